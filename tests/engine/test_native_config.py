"""Native structured config under the real engine: `--path` edits one field, and old stack files convert.

Pulumi.yaml declares the structured keys ``type: object`` (``pools`` and ``egress``: arrays of objects),
so ``pulumi config set --path`` edits one field of a key instead of replacing its whole YAML string, and
the engine refuses a stack file from before, whose keys are YAML inside strings, until
``make migrate-config`` converts it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.engine.conftest import REPO, Project, Toolchain, brought_up, make_project
from tests.engine.guide import type_and_name
from tests.kube_testenv import KubeAPI

STACK = "dev"
P = "celery-platform:"
DATABASE_URL = "postgresql://app:engine-pw@db.internal:5432/app"
OLD_DEV = REPO / "tests" / "unit" / "fixtures" / "Pulumi.dev.before-native-config.yaml"
BROKER_HOST = "10.30.0.4"


def _others(config: dict[str, Any]) -> dict[str, Any]:
    """Every key but pools; a plain value as text, since the CLI may rewrite `false` as "false"."""
    return {k: v if isinstance(v, dict | list) else str(v) for k, v in config.items() if k != P + "pools"}


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("native-config"), toolchain, cluster)
    with brought_up(project, STACK, DATABASE_URL) as up:
        yield up


def test_setting_one_pool_field_with_path_previews_exactly_that_deployments_update(deployed: Project) -> None:
    stack_file = deployed.dir / f"Pulumi.{STACK}.yaml"
    before_text = stack_file.read_text()
    before = deployed.stack_file(STACK)["config"]
    try:
        deployed.pulumi("config", "set", "--stack", STACK, "--path", "pools[0].replicas", "4")
        after = deployed.stack_file(STACK)["config"]
        # One field changed; the rest of the pools, and every other key, are as they were.
        expected_pools = [dict(before[P + "pools"][0], replicas=4), *before[P + "pools"][1:]]
        assert after[P + "pools"] == expected_pools
        assert _others(after) == _others(before)
        preview = json.loads(deployed.pulumi("preview", "--stack", STACK, "--json").stdout)
        changed = [s for s in preview.get("steps", []) if s["op"] != "same" and "pulumi:pulumi:Stack" not in s["urn"]]
        assert {type_and_name(s["urn"]): s["op"] for s in changed} == {
            ("kubernetes:apps/v1:Deployment", "celery-main"): "update"
        }
        # ... and within it, the replica count alone.
        assert set(changed[0]["detailedDiff"] or {}) == {"spec.replicas"}, changed[0]["detailedDiff"]
    finally:
        stack_file.write_text(before_text)
    assert deployed.preview_steps(STACK) == {}, "restoring the stack file restores the plan"


def test_switching_to_an_external_broker_field_by_field_previews_the_switch(deployed: Project) -> None:
    stack_file = deployed.dir / f"Pulumi.{STACK}.yaml"
    before_text = stack_file.read_text()
    try:
        for path, value in (
            ("broker.type", "external"),
            ("broker.external.host", BROKER_HOST),
            ("broker.external.urlSecret.name", "celery-broker"),
            ("broker.external.urlSecret.key", "url"),
        ):
            deployed.pulumi("config", "set", "--stack", STACK, "--path", path, value)
        assert deployed.stack_file(STACK)["config"][P + "broker"] == {
            "type": "external",
            "external": {"host": BROKER_HOST, "urlSecret": {"name": "celery-broker", "key": "url"}},
        }
        preview = json.loads(deployed.pulumi("preview", "--stack", STACK, "--json").stdout)
        steps = {type_and_name(s["urn"]): s["op"] for s in preview.get("steps", []) if s["op"] != "same"}
        # Our Redis goes; the workers are updated to the external host, which the egress policy admits.
        assert steps[("kubernetes:apps/v1:StatefulSet", "celery-redis")] == "delete", steps
        assert steps[("kubernetes:apps/v1:Deployment", "celery-main")] == "update", steps
        assert not [key for key, op in steps.items() if op == "create" and "redis" in key[1]], steps
        assert BROKER_HOST in json.dumps(preview)
    finally:
        stack_file.write_text(before_text)
    assert deployed.preview_steps(STACK) == {}, "restoring the stack file restores the plan"


def test_make_migrate_config_turns_a_refused_old_stack_file_into_one_that_previews(project: Project) -> None:
    project.init_stack(STACK, DATABASE_URL)
    written = project.stack_file(STACK)
    secure = written["config"][P + "databaseUrl"]["secure"]
    # The last release's dev file, with what `stack init` and `config set --secret` added.
    old = (
        f"encryptionsalt: {written['encryptionsalt']}\n"
        + OLD_DEV.read_text()
        + f"  {P}databaseUrl:\n    secure: {secure}\n  kubernetes:context: my-{STACK}-cluster\n"
    )
    stack_file = project.dir / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(old)

    refused = project.pulumi("preview", "--stack", STACK, check=False)
    engine_says = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"Stack '{STACK}' with configuration key '" in engine_says and "must be of type '" in engine_says

    guarded = project.sh(f"make preview STACK={STACK}", check=False)
    assert guarded.returncode != 0
    assert f"`make migrate-config STACK={STACK}` converts the file" in guarded.stderr
    assert "must be of type" not in guarded.stdout + guarded.stderr, "the guard runs before pulumi"
    assert stack_file.read_text() == old

    converted = project.sh(f"make migrate-config STACK={STACK}")
    assert "converted limitRange, quota, pools, redis, beat, egress" in converted.stdout
    new = stack_file.read_text()
    assert f"    secure: {secure}\n" in new and new.startswith(f"encryptionsalt: {written['encryptionsalt']}\n")
    assert secure not in converted.stdout + converted.stderr
    assert yaml.safe_load(new)["config"][P + "pools"][0]["name"] == "main"

    project.pulumi("preview", "--stack", STACK)
    project.sh(f"make preview STACK={STACK}")
    again = project.sh(f"make migrate-config STACK={STACK}")
    assert "nothing to change" in again.stdout and stack_file.read_text() == new
