"""The stack config: each key is a field of CeleryPlatformArgs, read from Pulumi config and parsed into the args.

Structured keys (limitRange, pools, broker, ...) are YAML objects in the stack file, which the engine
passes as JSON text. They parse straight into the component's own typed args, so the stack and the
component share one schema. Types are checked here; the rules run once, in CeleryPlatform.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError
from pydantic.alias_generators import to_camel

from celery_platform.config._type_errors import _field_name, _from_pydantic, _unwrap
from celery_platform.config._yaml import YamlError, load_config_value, load_yaml
from celery_platform.config.keys import KEYS, REQUIRED, UNSET, Key, StackConfig
from celery_platform.config.platform import FIELD_RULES, MAX_POOLS, CeleryPlatformArgs, camel
from celery_platform.config.problems import (
    Problem,
    ValidationError,
    did_you_mean,
    mask_secrets,
    raise_if_any,
    redacted,
    shown,
)
from celery_platform.config.rotation import Rotation, rotation_problems

__all__ = ["KEYS", "MAX_POOLS", "Key", "StackConfig", "load_stack_config", "parse_stack_config", "read_stack_config"]

PROJECT = "celery-platform"
# Config namespaces a stack may use besides the project's own: the providers' and the engine's.
OTHER_NAMESPACES = ("kubernetes", "pulumi", "random")


def _yaml_problem(key: Key, err: YamlError, secret: bool) -> Problem:
    problem = err.problem
    if secret:  # PyYAML quotes the offending text; a secret's text stays out of the message
        problem = re.sub(r"'[^']*'", "'*'", problem)
    where = f" at {err.where} of its value" if err.where else ""
    return Problem(key.name, f"not valid YAML{where}: {problem}", "a YAML document", "a YAML document")


def _decode(key: Key, raw: Any, secret: bool) -> tuple[Any, list[Problem]]:
    """Turn the string Pulumi hands us into the Python value the key's type parses."""
    if raw is None:
        return None, [Problem(key.name, "is null", "null", "a value (leave the key out to take its default)")]
    if not isinstance(raw, str):
        return raw, []
    if key.structured or key.pulumi_type == "array":
        try:
            decoded = load_config_value(raw)
        except YamlError as err:
            return None, [_yaml_problem(key, err, secret)]
        if key.pulumi_type == "array" and not isinstance(decoded, list):
            got = redacted(raw) if secret else shown(raw)
            return None, [Problem(key.name, "not a list", got, "a YAML list in the stack file")]
        if decoded is None:
            return {}, []
        return decoded, []
    return raw, []


def _leaves(value: Any, schema_words: frozenset[str]) -> list[str]:
    """Every scalar in a parsed config value, and every mapping key that is user data, as text."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out += [str(k) for k in item if str(k) not in schema_words]
            stack += list(item.values())
        elif isinstance(item, list | tuple):
            stack += list(item)
        elif item is not None:
            out.append(str(item))
    return out


def _schema_words() -> frozenset[str]:
    words: set[str] = set()
    todo = [_unwrap(k.python_type) for k in KEYS]
    while todo:
        tp = todo.pop()
        for arg in typing.get_args(tp):
            todo.append(arg)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            hints = typing.get_type_hints(tp)
            for f in dataclasses.fields(tp):
                words.add(to_camel(f.name))
                todo.append(hints[f.name])
    return frozenset(words)


def secret_texts(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> list[str]:
    """Return every text that must not reach a message: each secret key's value and its parts."""
    words = _schema_words()
    texts: list[str] = []
    for name in secret_keys:
        if name not in raw or raw[name] is None:
            continue
        value = raw[name]
        texts.append(str(value))
        if isinstance(value, str):
            try:
                value = load_yaml(value)
            except YamlError:
                continue
        texts += _leaves(value, words)
    return texts


def namespace_problems(keys: typing.Iterable[str], project: str = PROJECT) -> list[Problem]:
    """Refuse config keys whose namespace is neither the project's nor a provider's or the engine's.

    ``celery-platfrom:namespace`` would otherwise be ignored, and the platform would go to the default
    namespace. Values are never shown: a misspelled key may well hold a secret.
    """
    allowed = (project, *OTHER_NAMESPACES)
    problems = []
    for full_key in sorted(keys):
        namespace, colon, _ = full_key.partition(":")
        if not colon:
            problems.append(
                Problem(
                    _field_name(full_key),
                    "config key without a namespace",
                    "a key with no ':'",
                    f"'{project}:{full_key}'" + (" (pulumi config set adds it)" if full_key else ""),
                )
            )
        elif namespace not in allowed:
            problems.append(
                Problem(
                    _field_name(full_key),
                    "unknown config namespace" + did_you_mean(namespace, allowed),
                    f"namespace {namespace!r}",
                    "one of " + ", ".join(f"'{n}:'" for n in allowed),
                )
            )
    return problems


def read_raw_config(project: str = PROJECT) -> dict[str, Any]:
    """Return this project's config keys (without the ``project:`` prefix) as Pulumi passes them."""
    merged = all_config()
    prefix = f"{project}:"
    return {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}


def all_config() -> dict[str, Any]:
    """Return every config key that the engine passed to the program, of every namespace."""
    return {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}


@functools.cache
def _adapter(python_type: Any) -> TypeAdapter[Any]:
    """Pydantic's validator for one key type, built once: building all of them took a sixth of a stack's render."""
    return TypeAdapter(python_type)


def read_stack_config(
    raw: Mapping[str, Any],
    subject: str = f"{PROJECT} stack config",
    secret_keys: frozenset[str] = frozenset(),
) -> CeleryPlatformArgs:
    """Parse every key of ``raw`` into CeleryPlatformArgs, or raise one ValidationError.

    Only types are checked here, so that the platform is validated once, by CeleryPlatform. When a key
    cannot be parsed, the rules of the keys that could are reported with it: every problem at once.
    ``secret_keys`` names keys that the stack holds as secret (``--secret``, ``secure:``), besides the
    keys the schema declares secret. No part of their values appears in any message.
    """
    problems: list[Problem] = []
    known = {k.name: k for k in KEYS}
    hidden = frozenset(secret_keys) | {k.name for k in KEYS if k.secret}
    for name in sorted(set(raw) - set(known)):
        # Never the value: a misspelled secret key (databaseURL) holds a secret in plain text.
        value = raw[name]
        problems.append(
            Problem(
                _field_name(name),
                "unknown config key" + did_you_mean(name, known),
                f"a value of {len(str(value))} characters, not shown",
                "one of " + ", ".join(sorted(known)),
            )
        )
    values: dict[str, Any] = {}
    for key in KEYS:
        if key.name not in raw:
            if key.default is REQUIRED:
                problems.append(Problem(key.name, "is required", "nothing", f"{key.description} (pulumi config set)"))
            elif key.default is not UNSET:
                values[key.attribute] = key.default
            continue
        secret = key.name in hidden
        decoded, decode_problems = _decode(key, raw[key.name], secret)
        problems += decode_problems
        if decode_problems:
            continue
        try:
            value = _adapter(key.python_type).validate_python(decoded)
        except PydanticError as err:
            problems += _from_pydantic(key, err, secret)
            continue
        except (ValueError, TypeError, ArithmeticError) as err:  # e.g. a Decimal too long to convert
            problems.append(Problem(key.name, f"cannot be read: {type(err).__name__}", "a value", key.description))
            continue
        if key.name == "rotation" and not isinstance(value, Rotation):
            problems += rotation_problems(key.name, value)
            value = Rotation()
        if key.secret and value == "" and key.default is UNSET:
            continue
        if isinstance(value, list):
            value = tuple(value)
        values[key.attribute] = value
    if problems:
        parsed = frozenset(camel(name) for name in values)
        problems += [p for p in _rules_of_parsed(values, parsed)]
        raise ValidationError(subject, mask_secrets(problems, secret_texts(raw, hidden)))
    return CeleryPlatformArgs(**values, secret_fields=hidden - {k.name for k in KEYS if k.secret})


def _rules_of_parsed(values: Mapping[str, Any], parsed: frozenset[str]) -> list[Problem]:
    """Run each parsed key's own rule, when other keys could not be parsed (no args to validate whole)."""
    problems: list[Problem] = []
    for attribute, value in values.items():
        rule = FIELD_RULES.get(camel(attribute))
        if rule is not None and camel(attribute) in parsed:
            problems += rule(camel(attribute), value)
    return problems


def parse_stack_config(
    raw: Mapping[str, Any],
    subject: str = f"{PROJECT} stack config",
    secret_keys: frozenset[str] = frozenset(),
) -> CeleryPlatformArgs:
    """Parse ``raw`` and validate the platform it describes, as CeleryPlatform will, for tools and tests."""
    args = read_stack_config(raw, subject, secret_keys)
    hidden = frozenset(secret_keys) | {k.name for k in KEYS if k.secret}
    raise_if_any(subject, mask_secrets(args.validate(), secret_texts(raw, hidden)))
    return args


def load_stack_config() -> CeleryPlatformArgs:
    """Read this stack's config from the Pulumi runtime into CeleryPlatformArgs, every namespace checked."""
    subject = f"{PROJECT} stack config of stack {pulumi.get_stack()!r}"
    raise_if_any(subject, namespace_problems(all_config()))
    raw = read_raw_config()
    secret_keys = frozenset(k for k in raw if pulumi.runtime.config.is_config_secret(f"{PROJECT}:{k}"))
    plain = plain_secret_problems(raw, secret_keys)
    try:
        config = read_stack_config(raw, subject, secret_keys)
    except ValidationError as err:
        raise ValidationError(subject, [*plain, *err.problems]) from None
    if plain:  # refused already: say what else CeleryPlatform would, so that one run shows every problem
        hidden = secret_keys | {k.name for k in KEYS if k.secret}
        raise ValidationError(subject, [*plain, *mask_secrets(config.validate(), secret_texts(raw, hidden))])
    return config


def plain_secret_problems(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> list[Problem]:
    """Refuse a secret key whose value the stack holds in plain text.

    The engine enforces ``secret: true`` only for keys that Pulumi.yaml declares; the optional
    secrets are undeclared (see UNSET), so a ``pulumi config set sentryDsn ...`` without ``--secret``
    would put a credential in the committed stack file in plain text. The value is never shown.
    """
    return [
        Problem(
            key.name,
            "a secret set in plain text in the stack file",
            "a plain-text value",
            f"an encrypted value: pulumi config set --secret {key.name} ...",
        )
        for key in KEYS
        if key.secret and raw.get(key.name) and key.name not in secret_keys
    ]
