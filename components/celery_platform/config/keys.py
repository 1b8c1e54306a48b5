"""The stack config keys: one per field of CeleryPlatformArgs, with its Pulumi type, default and description."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from celery_platform.config.platform import CeleryPlatformArgs, camel
from celery_platform.config.rotation import Rotation
from celery_platform.config.schema import (
    MISSING,
    field_default,
    field_docs,
    field_type,
    is_secret,
    is_setting,
    is_structured,
    pulumi_config_type,
)

REQUIRED: Any = object()


# Optional, and not declared in Pulumi.yaml at all. The engine (pkg/v3 workspace/config.go) refuses a
# declared key with no `default:` that a stack leaves out ("is missing configuration value"), and copies a
# `default:` into the stack as plain text, then refuses it for a `secret: true` key ("must be encrypted
# as it's secret"). So an optional secret can only be an undeclared key; absent, its value is "".
UNSET: Any = object()


@dataclass(frozen=True)
class Key:
    """One config key: its Pulumi type, Python type, default, description and whether it is secret."""

    name: str
    pulumi_type: str
    python_type: Any
    description: str
    default: Any = REQUIRED
    structured: bool = False
    secret: bool = False
    declared: bool = True
    """Whether Pulumi.yaml declares the key. Not the optional secrets (see UNSET), nor ``rotation``,
    which is a map (``pulumi config set --path rotation.djangoSecretKey 1``) and Pulumi.yaml cannot
    type a map."""

    @property
    def attribute(self) -> str:
        """The StackConfig attribute that holds this key's value."""
        return "".join("_" + c.lower() if c.isupper() else c for c in self.name)


def _key(f: dataclasses.Field[Any]) -> Key:
    """A stack config key, read off one field of CeleryPlatformArgs."""
    secret = is_secret(f)
    default = field_default(f)
    args_type = field_type(CeleryPlatformArgs, f)
    python_type = _STACK_TYPES.get(f.name, args_type)
    if default is MISSING:
        default = REQUIRED
    elif secret and default is None:
        default = UNSET
    return Key(
        name=camel(f.name),
        pulumi_type=pulumi_config_type(args_type)["type"],
        python_type=python_type,
        description=field_docs(CeleryPlatformArgs)[f.name],
        default=default,
        structured=is_structured(args_type),
        secret=secret,
        declared=default is not UNSET,
    )


# A stack may also write `rotation: 0` (every keeper at 0), which the args type holds as Rotation().
_STACK_TYPES: dict[str, Any] = {"rotation": Rotation | int}


KEYS: tuple[Key, ...] = tuple(_key(f) for f in dataclasses.fields(CeleryPlatformArgs) if is_setting(f))
"""Every stack config key: one per field of CeleryPlatformArgs, with its type, default and description."""


# The stack config parses into the component's own args: one schema.
StackConfig = CeleryPlatformArgs
