"""Property: any mutation of a valid stack config gives a valid config or one clear ValidationError."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config

BASE: dict[str, Any] = {
    "namespace": "celery-dev",
    "rotation": {"djangoSecretKey": 1},
    "databaseUrl": "postgresql://app:pw@db:5432/app",
    "limitRange": {
        "defaultRequest": {"cpu": "50m", "memory": "64Mi"},
        "default": {"cpu": "100m", "memory": "128Mi"},
        "min": {"cpu": "10m", "memory": "16Mi"},
        "max": {"cpu": "1", "memory": "1Gi"},
        "maxLimitRequestRatio": {"cpu": 2, "memory": 2},
    },
    "quota": {"requestsCpu": "2", "pods": 20},
    "image": "registry.example.com/app:1.0.0",
    "pools": [{"name": "main", "queues": ["default"], "concurrency": 2}],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["400mm", "512m", "1Gi", "250m", "-1", "0.5", "", "x", "https://k@h/1", "mysql://a@b/c"]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, child in tree.items():
            out += _paths(child, (*prefix, key))
    return out


def _mutate(tree: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> dict[str, Any]:
    copy = yaml.safe_load(yaml.safe_dump(tree))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return copy


def _as_pulumi_config(tree: dict[str, Any]) -> dict[str, Any]:
    """Structured keys travel as YAML strings, as Pulumi passes them."""
    return {k: yaml.safe_dump(v) if isinstance(v, dict | list) else v for k, v in tree.items()}


# No deadline: a loaded 2-core CI machine makes per-example timing meaningless; the property is the point.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), new_value=values, delete=st.booleans())
def test_a_mutated_config_is_valid_or_fails_with_one_clear_error(
    data: st.DataObject, new_value: Any, delete: bool
) -> None:
    path = data.draw(st.sampled_from([*_paths(BASE), ("unknownKey",), ("limitRange", "bogus")]))
    raw = _as_pulumi_config(_mutate(BASE, path, new_value, delete))
    try:
        config = parse_stack_config(raw)
    except ValidationError as err:
        assert err.problems, "an error must list at least one problem"
        for problem in err.problems:
            assert problem.field and problem.problem and problem.got and problem.expected
            assert str(problem).startswith(f"{problem.field}: ")
        assert "pw@db" not in str(err), "the database URL is a secret"
        return
    # Valid: every rule that the components enforce holds for what was accepted.
    assert config.limit_range.validate("limitRange") == []
    assert config.quota.validate("quota") == []
    assert config.rotation.validate("rotation") == []


STACK_MUTATIONS = st.sampled_from(
    [
        ("celery-platform:pools", "replicas"),
        ("celery-platform:pools", "concurrency"),
        ("celery-platform:pools", "queues"),
        ("celery-platform:pools", "name"),
        ("celery-platform:limitRange", "maxLimitRequestRatio"),
        ("celery-platform:quota", "pods"),
        ("celery-platform:quota", "requestsCpu"),
        ("celery-platform:redis", "resources"),
        ("celery-platform:beat", "maxIntervalSeconds"),
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack=st.sampled_from(["dev", "prod"]), where=STACK_MUTATIONS, new_value=values)
def test_a_mutated_real_stack_runs_as_a_program_or_fails_with_one_clear_error(
    stack: str, where: tuple[str, str], new_value: Any
) -> None:
    """The whole program, not just the schema: no mutation may crash it with anything but ValidationError."""
    from celery_platform.render import run_program
    from celery_platform.render.stack_files import stack_config

    config, secret_keys = stack_config(stack)
    key, field = where
    document = yaml.safe_load(config[key])
    target = document[0] if isinstance(document, list) else document
    target[field] = new_value
    config = {**config, key: yaml.safe_dump(document)}
    try:
        program = run_program(stack, config, secret_keys)
    except ValidationError as err:
        assert err.problems and all(str(p).startswith(f"{p.field}: ") for p in err.problems)
        return
    kinds = {o["kind"] for o in program.mocks.objects}
    assert {"Namespace", "LimitRange", "ResourceQuota", "Secret", "StatefulSet"} <= kinds
