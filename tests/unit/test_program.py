"""The whole program, per real stack file, loaded through PULUMI_CONFIG like `pulumi up` would."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pulumi
import pytest

from celery_platform.render import ProgramRun, run_program
from celery_platform.render.stack_files import available_stacks, stack_config
from tests.conftest import is_secret, resolve

STACKS = available_stacks()


def run_stack(stack: str) -> ProgramRun:
    config, secret_keys = stack_config(stack)
    return run_program(stack, config, secret_keys)


def test_both_environments_have_a_stack_file() -> None:
    assert STACKS == ["dev", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_exports_the_namespace_and_the_secret_name(stack: str) -> None:
    program = run_stack(stack)
    config, _ = stack_config(stack)
    platform = program.globals["platform"]
    assert resolve(platform.namespace) == config["celery-platform:namespace"]
    secret_name = resolve(platform.secret_name)
    assert secret_name is not None and secret_name.startswith("celery-secrets-")


@pytest.mark.parametrize("stack", STACKS)
def test_every_secret_output_of_the_program_is_secret(stack: str) -> None:
    secrets = run_stack(stack).globals["platform"].secrets
    for name in ("django_secret_key", "field_encryption_key", "redis_password", "database_url"):
        assert is_secret(getattr(secrets, name)), name


@pytest.mark.parametrize("stack", STACKS)
def test_the_namespace_guardrails_are_those_of_the_stack_file(stack: str) -> None:
    import yaml

    config, _ = stack_config(stack)
    program = run_stack(stack)
    [limit_range] = [o for o in program.mocks.objects if o["kind"] == "LimitRange"]
    expected = yaml.safe_load(config["celery-platform:limitRange"])
    got = limit_range["spec"]["limits"][0]
    for part in ("defaultRequest", "default", "min", "max"):
        assert got[part] == {k: str(v) for k, v in expected[part].items()}, part


def _registered(stack: str) -> list[tuple[pulumi.Resource, str, pulumi.Resource | None]]:
    """Run the stack program and return every resource it registered: (resource, type, parent)."""
    seen: list[tuple[pulumi.Resource, str, pulumi.Resource | None]] = []
    original = pulumi.Resource.__init__

    def recording(self: pulumi.Resource, t: str, name: str, *args: Any, **kwargs: Any) -> None:
        opts = kwargs.get("opts") if "opts" in kwargs else (args[2] if len(args) > 2 else None)
        seen.append((self, t, getattr(opts, "parent", None)))
        original(self, t, name, *args, **kwargs)

    with mock.patch.object(pulumi.Resource, "__init__", recording):
        run_stack(stack)
    return seen


def _root(resource: pulumi.Resource, parents: dict[int, pulumi.Resource | None]) -> pulumi.Resource:
    while (parent := parents.get(id(resource))) is not None:
        resource = parent
    return resource


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_program_creates_one_celery_platform_and_nothing_beside_it(stack: str) -> None:
    seen = [
        (r, t, p)
        for r, t, p in _registered(stack)
        if t != "pulumi:pulumi:Stack" and not t.startswith("pulumi:providers:")
    ]
    platforms = [r for r, t, _ in seen if t == "celery-platform:index:CeleryPlatform"]
    assert len(platforms) == 1
    parents = {id(r): p for r, _, p in seen}
    outside = [t for r, t, _ in seen if _root(r, parents) is not platforms[0]]
    assert outside == []
    assert len(seen) > 20  # the platform's children were seen too: the recording is not empty by accident
