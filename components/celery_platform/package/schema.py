"""The Pulumi package schema of celery-platform, derived from CeleryPlatformArgs and CeleryPlatform.

Every args dataclass becomes a type ``celery-platform:index:<Name>``, and each of its fields a camelCase
property: its docstring is the description, it is required when it has no default, and it carries
that default when the schema can hold one (a string, a number or a boolean). The SDK of every language
is generated from this schema, so a field is still written once, in its dataclass.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pulumi
from pydantic.alias_generators import to_camel

from celery_platform import __version__
from celery_platform.config.platform import CeleryPlatformArgs
from celery_platform.config.schema import (
    MISSING,
    field_default,
    field_docs,
    field_type,
    is_secret,
    is_setting,
    unwrap_optional,
)
from celery_platform.resources.platform import TYPE_TOKEN, CeleryPlatform

PACKAGE = TYPE_TOKEN.split(":", 1)[0]
ANY: dict[str, Any] = {"$ref": "pulumi.json#/Any"}
# Outputs that carry a credential: SDKs type them secret, and the engine keeps them encrypted in state.
SECRET_OUTPUTS = frozenset({"brokerUrl"})
LANGUAGES = ("nodejs", "python", "csharp", "java", "go")


def type_token(cls: type) -> str:
    """The schema token of an args dataclass: ``celery-platform:index:<class name>``."""
    return f"{PACKAGE}:index:{cls.__name__}"


def wire_name(f: dataclasses.Field[Any]) -> str:
    """A field's name in the schema: camelCase, as the stack config and the args' pydantic schema spell it."""
    return to_camel(f.name)


def summary(cls: type) -> str:
    """A class docstring's first paragraph, on one line (an indented continuation would render as code)."""
    paragraph = inspect.cleandoc(cls.__doc__ or "").split("\n\n", 1)[0]
    return " ".join(paragraph.split())


class _Types:
    """Collects the object types that the properties of CeleryPlatformArgs refer to, each once."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}
        self._classes: dict[str, type] = {}

    def ref(self, cls: type) -> dict[str, Any]:
        """A reference to ``cls``'s object type, which is described on first use."""
        token = type_token(cls)
        known = self._classes.get(token)
        if known is not None and known is not cls:
            raise TypeError(f"{known.__module__}.{known.__name__} and {cls.__module__}.{cls.__name__} share {token}")
        if known is None:
            self._classes[token] = cls
            self.specs[token] = {}  # a placeholder first: a type may refer to itself
            properties, required = self.properties(cls)
            spec: dict[str, Any] = {"type": "object", "description": summary(cls), "properties": properties}
            if required:
                spec["required"] = required
            self.specs[token] = spec
        return {"$ref": f"#/types/{token}"}

    def properties(self, cls: type) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """The properties of a dataclass's settings, and the names of those without a default."""
        docs = field_docs(cls)
        properties: dict[str, dict[str, Any]] = {}
        required: list[str] = []
        for f in dataclasses.fields(cls):
            if not is_setting(f):
                continue
            name = wire_name(f)
            if f.name not in docs:
                raise TypeError(f"{cls.__name__}.{f.name} has no docstring: every schema property is described")
            spec = {**self.spec(field_type(cls, f), f"{cls.__name__}.{f.name}"), "description": docs[f.name]}
            spec |= _default(f, spec)
            if is_secret(f):
                spec["secret"] = True
            properties[name] = spec
            if field_default(f) is MISSING:
                required.append(name)
        return properties, required

    def spec(self, tp: Any, where: str) -> dict[str, Any]:
        """The schema type of a Python type: a primitive, an array, a map or a reference to an object type."""
        tp = unwrap_optional(tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp in (Decimal, float):
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
        if tp is Any:
            return dict(ANY)
        if origin in (tuple, list) and args and (origin is list or args[1:] in ((), (Ellipsis,))):
            return {"type": "array", "items": self.spec(args[0], where)}
        if origin in (dict, Mapping) and args and args[0] is str:
            return {"type": "object", "additionalProperties": self.spec(args[1], where)}
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.ref(tp)
        raise TypeError(f"{where}: the package schema cannot describe {tp!r}")


def _default(f: dataclasses.Field[Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``default`` of a property, where the schema allows one: a primitive property's plain default."""
    value = field_default(f)
    kind = spec.get("type")
    if value is MISSING or value is None or is_secret(f):
        return {}
    if kind == "boolean" and isinstance(value, bool):
        return {"default": value}
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return {"default": value}
    if kind == "number" and isinstance(value, Decimal | int | float) and math.isfinite(value):
        return {"default": int(value) if value == int(value) else float(value)}
    if kind == "string" and isinstance(value, str):
        return {"default": value}
    return {}


def output_attributes() -> dict[str, str]:
    """CeleryPlatform's outputs: each ``pulumi.Output`` attribute it declares, by its schema name."""
    module = vars(sys.modules[CeleryPlatform.__module__])
    names: dict[str, str] = {}
    for attribute, annotation in inspect.get_annotations(CeleryPlatform).items():
        tp = eval(annotation, module) if isinstance(annotation, str) else annotation
        if typing.get_origin(tp) is pulumi.Output:
            names[to_camel(attribute)] = attribute
    return names


def _outputs(types: _Types) -> dict[str, dict[str, Any]]:
    module = vars(sys.modules[CeleryPlatform.__module__])
    annotations = inspect.get_annotations(CeleryPlatform)
    docs = field_docs(CeleryPlatform)
    outputs: dict[str, dict[str, Any]] = {}
    for name, attribute in output_attributes().items():
        annotation = annotations[attribute]
        tp = eval(annotation, module) if isinstance(annotation, str) else annotation
        [inner] = typing.get_args(tp)
        if attribute not in docs:
            raise TypeError(f"CeleryPlatform.{attribute} has no docstring: every output is described")
        outputs[name] = {**types.spec(inner, f"CeleryPlatform.{attribute}"), "description": docs[attribute]}
        if name in SECRET_OUTPUTS:
            outputs[name]["secret"] = True
    return outputs


def package_schema() -> dict[str, Any]:
    """The package schema that ``pulumi package get-schema`` prints and every SDK is generated from."""
    types = _Types()
    inputs, required_inputs = types.properties(CeleryPlatformArgs)
    outputs = _outputs(types)
    resource = {
        "isComponent": True,
        "description": summary(CeleryPlatform),
        "inputProperties": inputs,
        "requiredInputs": required_inputs,
        "properties": outputs,
        "required": list(outputs),
    }
    return {
        "name": PACKAGE,
        "displayName": PACKAGE,
        "version": __version__,
        "description": summary(CeleryPlatformArgs),
        "resources": {TYPE_TOKEN: resource},
        "types": dict(sorted(types.specs.items())),
        "language": {language: {"respectSchemaVersion": True} for language in LANGUAGES},
    }
