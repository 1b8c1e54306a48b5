"""What every derived view of CeleryPlatformArgs shares: field docs, Pulumi config types, secrets and defaults.

The stack config's keys, Pulumi.yaml's declarations, the component package's schema and the
configuration reference are all read off the dataclass fields through these functions.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import sys
import textwrap
import types
import typing
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict, with_config
from pydantic.alias_generators import to_camel

MISSING: Any = dataclasses.MISSING


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Return each field's docstring (the string right after its annotation), dedented, as one paragraph."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            )
        ):
            # One paragraph, with Markdown's code spans: the schema, Pulumi.yaml and the reference are Markdown.
            text = " ".join(inspect.cleandoc(after.value.value).split())
            docs[node.target.id] = text.replace("``", "`")
    return docs


def field_type(cls: type, f: dataclasses.Field[Any]) -> Any:
    """A field's annotation, evaluated in its class's module (secret fields are text: ``str``)."""
    if is_secret(f):
        return str
    if not isinstance(f.type, str):
        return f.type
    return eval(f.type, vars(sys.modules[cls.__module__]))


def unwrap_optional(tp: Any) -> Any:
    """``X | None`` as ``X``; any other type as it is."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def is_structured(tp: Any) -> bool:
    """Whether a field holds a mapping or a list of mappings (a YAML object in the stack file)."""
    tp = unwrap_optional(tp)
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) in (dict, typing.Mapping) or tp is dict:
        return True
    if typing.get_origin(tp) in (tuple, list):
        item = typing.get_args(tp)[0]
        return dataclasses.is_dataclass(item)
    return False


def pulumi_config_type(tp: Any) -> dict[str, Any]:
    """The Pulumi.yaml declaration of a field's type: string, integer, boolean, object, or an array of them."""
    tp = unwrap_optional(tp)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp in (str, Decimal, float):
        return {"type": "string"}
    if typing.get_origin(tp) in (tuple, list):
        return {"type": "array", "items": pulumi_config_type(typing.get_args(tp)[0])}
    return {"type": "object"}


def field_default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value, or MISSING when it is required."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def is_secret(f: dataclasses.Field[Any]) -> bool:
    """Whether a field holds a secret (never shown; a secret Output wherever it goes)."""
    return bool(f.metadata.get("secret"))


def is_setting(f: dataclasses.Field[Any]) -> bool:
    """Whether a field is a setting (in the schema, the stack config and the reference)."""
    return f.metadata.get("schema", True) is not False


# Applied to every args dataclass: the stack config parses YAML straight into the components' own
# typed args (camelCase keys, unknown keys refused), so there is one schema, not two.
args_schema = with_config(ConfigDict(alias_generator=to_camel, extra="forbid", coerce_numbers_to_str=True))
