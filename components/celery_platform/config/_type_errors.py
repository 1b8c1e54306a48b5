"""Pydantic's type errors as our problems: the field's path as the stack file spells it, and the keys allowed there."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError as PydanticError
from pydantic.alias_generators import to_camel

from celery_platform.config.keys import Key
from celery_platform.config.problems import (
    Problem,
    did_you_mean,
    redacted,
    shown,
)

_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "string_type": "a string",
    "decimal_parsing": "a number",
    "decimal_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dataclass_type": "a mapping of keys",
    "dict_type": "a mapping",
    "missing_keyword_argument": "a value",
    "missing": "a value",
}


def _path(key: str, loc: Sequence[int | str]) -> str:
    out = key
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{_field_name(str(part))}"
    return out


def _allowed_keys(tp: Any, loc: Sequence[int | str]) -> list[str]:
    """Walk ``tp`` along ``loc`` and return the camelCase keys the mapping there accepts."""
    for part in loc:
        origin = typing.get_origin(tp)
        if isinstance(part, int) and origin in (list, tuple, Sequence):
            tp = typing.get_args(tp)[0]
        elif dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            names = {to_camel(f.name): f.name for f in dataclasses.fields(tp)}
            if part not in names:
                return []
            tp = hints[names[str(part)]]
            if typing.get_origin(tp) in (typing.Union, types.UnionType):
                tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return []
    if dataclasses.is_dataclass(tp):
        return sorted(to_camel(f.name) for f in dataclasses.fields(tp))
    return []


def _from_pydantic(key: Key, err: PydanticError, secret: bool) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = list(e["loc"])
        # A union (rotation: a map or 0) reports each branch; the branch name is no place the user typed.
        loc = [part for part in loc if not (isinstance(part, str) and part in _BRANCHES)]
        got = redacted(str(e["input"])) if secret else shown(e["input"])
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = _allowed_keys(_unwrap(key.python_type), loc[:-1])
            problems.append(
                Problem(
                    _path(key.name, loc),
                    "unknown key" + did_you_mean(str(loc[-1]), allowed),
                    got,
                    "one of " + ", ".join(allowed) if allowed else "no key",
                )
            )
            continue
        if e["type"] in ("missing_keyword_argument", "missing"):
            got = "nothing"
        expected = _EXPECTED.get(e["type"], e["msg"])
        problems.append(Problem(_path(key.name, loc), e["msg"].lower(), got, expected))
    return problems


_BRANCHES = {"Rotation", "int", "function-plain[_validate()]"}


def _unwrap(tp: Any) -> Any:
    """The dataclass of ``Rotation | int``, for listing the keys it accepts."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), tp)
    return tp


def _field_name(name: str) -> str:
    """A key as a message's field: quoted when it is empty or holds characters no key has."""
    return name if re.fullmatch(r"[A-Za-z0-9_.:-]+", name) else repr(name)
