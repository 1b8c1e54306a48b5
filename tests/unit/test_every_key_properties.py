"""Property: any value of any JSON type in any key of the stack config gives a config or one clear refusal.

The paths come from the schema itself (every field of every args dataclass, through lists of pools,
pod settings, broker, monitoring, autoscaling and egress), so a field added tomorrow is covered too.
Each case sets one path of a valid stack to an arbitrary value (None, bools, huge ints, floats,
strings with line breaks and Unicode, lists, mappings) and, for a second path, another one. The
verdict must be acceptance, or a ValidationError whose every problem names a field of the schema
and shows no secret; never any other exception.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel

from celery_platform.config.keys import KEYS
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config

# A wider hunt: EVERY_KEY_EXAMPLES=5000 pytest tests/unit/test_every_key_properties.py (make fuzz has its own harness).
EXAMPLES = int(os.environ.get("EVERY_KEY_EXAMPLES", "400"))
CANARY = "canarySecret0123456789abcdef"
BASE: dict[str, Any] = {
    "namespace": "celery-dev",
    "databaseUrl": f"postgresql://app:{CANARY}@db:5432/app",
    "redisPassword": CANARY + "xyz",
    "image": "registry.example.com/app:1.0.0",
    "pools": [{"name": "main", "queues": ["default"], "concurrency": 2}],
    "broker": {"type": "redis"},
    "pod": {},
    "monitoring": {"alerts": {}},
}
SECRETS = (CANARY,)

Path = tuple[str | int, ...]


def _unwrap(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _paths(tp: Any, prefix: Path, depth: int = 0) -> list[Path]:
    """Every settable path under a field of type ``tp`` (one list element, one map key)."""
    out: list[Path] = []
    if depth > 8:
        return out
    for option in _unwrap(tp):
        origin = typing.get_origin(option)
        if dataclasses.is_dataclass(option) and isinstance(option, type):
            hints = typing.get_type_hints(option)
            for f in dataclasses.fields(option):
                if f.metadata.get("schema", True) is False:
                    continue
                path = (*prefix, to_camel(f.name))
                out.append(path)
                out += _paths(hints[f.name], path, depth + 1)
        elif origin in (tuple, list, Sequence):
            path = (*prefix, 0)
            out.append(path)
            out += _paths(typing.get_args(option)[0], path, depth + 1)
        elif origin in (dict, Mapping):
            path = (*prefix, "userKey")
            out.append(path)
            out += _paths(typing.get_args(option)[1], path, depth + 1)
    return out


def _all_paths() -> list[Path]:
    out: list[Path] = []
    for key in KEYS:
        out.append((key.name,))
        out += _paths(key.python_type, (key.name,))
    return sorted(set(out), key=repr)


PATHS = _all_paths()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63, 10**30]),
    st.floats(allow_nan=False),
    st.text(max_size=16),
    st.sampled_from(["", " ", "x\n", "é", "\u2028", "0", "1Gi", "10.0.0.0/8", "[::1]", "-EB", "a" * 300]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def _set(tree: dict[str, Any], path: Path, value: Any) -> None:
    """Set ``path`` in ``tree``, creating the mappings and one-element lists on the way."""
    node: Any = tree
    for here, there in itertools.pairwise(path):
        child_default: Any = [] if isinstance(there, int) else {}
        if isinstance(here, int):
            if not isinstance(node, list):
                return
            while len(node) <= here:
                node.append(child_default)
            if not isinstance(node[here], list | dict):
                node[here] = child_default
            node = node[here]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(here), list | dict):
                node[here] = child_default
            node = node[here]
    last = path[-1]
    if isinstance(last, int):
        if isinstance(node, list):
            while len(node) <= last:
                node.append(None)
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value


def _as_pulumi_config(tree: dict[str, Any]) -> dict[str, Any]:
    """What the engine hands the program: structured keys as JSON text, scalars as text."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict | list) or value is None:
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, float) and value != value:
            out[name] = "nan"
        else:
            out[name] = str(value)
    return out


KNOWN_KEYS = {key.name for key in KEYS}
# A field path: a top-level key, then '.name', '[index]' or a quoted user key; user keys may hold anything.
FIELD = re.compile(r"(?P<head>[A-Za-z]+)(?:[.\[].*)?", re.DOTALL)


def _check_refusal(err: ValidationError) -> None:
    assert err.problems, "a ValidationError without problems"
    message = str(err)
    for secret in SECRETS:
        assert secret not in message, message
    for problem in err.problems:
        match = FIELD.fullmatch(problem.field)
        assert match and match.group("head") in KNOWN_KEYS, f"problem names no field of the schema: {problem}"
        assert problem.problem and problem.expected, problem


def _judge(raw: dict[str, Any]) -> None:
    try:
        parse_stack_config(raw)
    except ValidationError as err:
        _check_refusal(err)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values, other=st.sampled_from(PATHS), other_value=values)
def test_any_value_in_any_key_gives_a_config_or_one_clear_refusal(
    path: Path, value: Any, other: Path, other_value: Any
) -> None:
    tree = json.loads(json.dumps(BASE))
    _set(tree, path, value)
    _set(tree, other, other_value)
    _judge(_as_pulumi_config(tree))


def test_the_walk_reaches_every_extension_point() -> None:
    names = {".".join(str(p) for p in path) for path in PATHS}
    for expected in (
        "pools.0.pod.affinity",
        "pools.0.autoscaling",
        "pools.0.extraArgs.0",
        "broker.external.host",
        "broker.external.port",
        "broker.external.cidr",
        "egress.0.cidr",
        "monitoring.alerts.noConsumerMinutes",
        "monitoring.selectorLabels.userKey",
        "pod.tolerations.0.value",
        "pod.env.0.name",
        "kedaOperator.podLabels.userKey",
    ):
        assert any(n.startswith(expected) for n in names), expected
    assert len(PATHS) > 150, len(PATHS)


@settings(max_examples=EXAMPLES // 6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values)
def test_any_value_in_any_key_of_a_real_stack_runs_the_program_or_fails_with_one_clear_refusal(
    path: Path, value: Any
) -> None:
    """The whole program under mocks (render included), not just the schema: only a ValidationError may stop it."""
    from celery_platform.render import run_program
    from celery_platform.render.stack_files import stack_config

    config, secret_keys = stack_config("prod")
    prefix = "celery-platform:"
    tree = {k[len(prefix) :]: json.loads(v) if k[len(prefix) :] in STRUCTURED else v for k, v in config.items()}
    _set(tree, path, value)
    raw = _as_pulumi_config(tree)
    try:
        run_program("prod", {prefix + k: v for k, v in raw.items()}, secret_keys)
    except ValidationError as err:
        _check_refusal(err)


STRUCTURED = {key.name for key in KEYS if key.structured or key.pulumi_type == "array"}
