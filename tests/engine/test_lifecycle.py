"""A stack's life under the real engine: up, changes that preview exactly their steps, refresh, destroy.

One prod stack is initialised as the README says, brought up with the provider's await logic on, and
then changed through its config. Each change must preview exactly the steps in CHANGES and nothing
else; one of them is applied, after which a preview plans nothing again. Then refresh finds no drift
and destroy leaves no object of ours in the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, brought_up, make_project
from tests.engine.guide import type_and_name
from tests.kube_testenv import KubeAPI

STACK = "prod"
NAMESPACE = "celery-prod"
DATABASE_URL = "postgresql://app:engine-pw@db.internal:5432/app"


def _prod_config() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"])


def _pools(change: dict[str, object] | None = None, extra: list[dict[str, object]] | None = None) -> list[Any]:
    pools: list[Any] = _prod_config()["celery-platform:pools"]
    if change:
        pools[0].update(change)
    return pools + (extra or [])


def _limit_range_with_max_memory(memory: str) -> dict[str, Any]:
    limit_range: dict[str, Any] = _prod_config()["celery-platform:limitRange"]
    limit_range["max"]["memory"] = memory
    return limit_range


# Each config change, what it must plan (resource type and name -> op), and why.
CHANGES = {
    "replicas 3 -> 4": (
        {"pools": lambda: _pools({"replicas": 4})},
        {("kubernetes:apps/v1:Deployment", "celery-main"): "update"},
    ),
    "a new pool": (
        {
            "pools": lambda: _pools(
                extra=[
                    {
                        "name": "bulk",
                        "queues": ["reports"],
                        "replicas": 1,
                        "concurrency": 2,
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "256Mi"},
                            "limits": {"cpu": "200m", "memory": "512Mi"},
                        },
                    }
                ]
            )
        },
        {
            ("kubernetes:apps/v1:Deployment", "celery-bulk"): "create",
            ("kubernetes:policy/v1:PodDisruptionBudget", "celery-bulk-pdb"): "create",
        },
    ),
    "a LimitRange change": (
        {"limitRange": lambda: _limit_range_with_max_memory("6Gi")},
        {("kubernetes:core/v1:LimitRange", "celery-platform-limits"): "update"},
    ),
    "an image bump": (
        {"image": lambda: "ghcr.io/acme/celery-sample-app:0.1.1"},
        {
            ("kubernetes:apps/v1:Deployment", "celery-main"): "update",
            ("kubernetes:apps/v1:StatefulSet", "celery-beat"): "update",
            # The metrics exporter runs in the app image too.
            ("kubernetes:apps/v1:Deployment", "celery-exporter"): "update",
        },
    ),
}


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("lifecycle"), toolchain, cluster)
    with brought_up(project, STACK, DATABASE_URL) as up:
        yield up


def test_a_second_preview_after_up_plans_nothing(deployed: Project) -> None:
    deployed.pulumi("preview", "--stack", STACK, "--expect-no-changes")


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_config_change_previews_exactly_its_steps(deployed: Project, change: str) -> None:
    settings, expected = CHANGES[change]
    before = deployed.stack_file(STACK)
    try:
        for key, value in settings.items():
            deployed.set_config(STACK, f"celery-platform:{key}", value())
        steps = {type_and_name(urn): op for urn, op in deployed.preview_steps(STACK).items()}
        steps.pop(("pulumi:pulumi:Stack", f"celery-platform-{STACK}"), None)  # outputs may change
        assert steps == expected
    finally:
        (deployed.dir / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(before, sort_keys=False))
    assert deployed.preview_steps(STACK) == {}, "restoring the stack file restores the plan"


def test_scaling_a_pool_rolls_out_and_converges(deployed: Project) -> None:
    before = deployed.stack_file(STACK)
    deployed.set_config(STACK, "celery-platform:pools", _pools({"replicas": 4}))
    deployed.sh(f"make up STACK={STACK}", timeout=1200)
    apps = client.AppsV1Api(deployed.api.api_client)
    [main] = [d for d in apps.list_namespaced_deployment(NAMESPACE).items if d.metadata.name.startswith("celery-main")]
    assert (main.spec.replicas, main.status.ready_replicas) == (4, 4)
    deployed.pulumi("preview", "--stack", STACK, "--expect-no-changes")
    (deployed.dir / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(before, sort_keys=False))
    deployed.sh(f"make up STACK={STACK}", timeout=1200)


def test_refresh_finds_no_drift(deployed: Project) -> None:
    deployed.pulumi("refresh", "--stack", STACK, "--yes", "--expect-no-changes")


def test_the_broker_url_output_is_secret(deployed: Project) -> None:
    outputs = json.loads(deployed.pulumi("stack", "output", "--stack", STACK, "--json").stdout)
    assert outputs["brokerUrl"] == "[secret]"
    shown = json.loads(deployed.pulumi("stack", "output", "--stack", STACK, "--json", "--show-secrets").stdout)
    assert shown["brokerUrl"].startswith("redis://:") and shown["brokerUrl"].endswith(
        f"@{outputs['brokerHost']}:6379/0"
    )


def test_the_protected_fernet_key_refuses_a_keeper_bump(deployed: Project) -> None:
    before = deployed.stack_file(STACK)
    try:
        deployed.pulumi("config", "set", "--stack", STACK, "--path", "rotation.fieldEncryptionKey", "1")
        result = deployed.pulumi("preview", "--stack", STACK, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "celery-secrets-field-encryption-key" in output and "protect" in output, output[-3000:]
    finally:
        (deployed.dir / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(before, sort_keys=False))


def test_destroy_leaves_no_object_of_ours(deployed: Project) -> None:
    # The Fernet key's generator is protected: a plain destroy refuses, and says which resource.
    refused = deployed.pulumi("destroy", "--stack", STACK, "--yes", check=False)
    assert refused.returncode != 0 and "celery-secrets-field-encryption-key" in refused.stdout + refused.stderr
    deployed.pulumi("state", "unprotect", "--stack", STACK, "--all", "--yes")
    deployed.pulumi("destroy", "--stack", STACK, "--yes")
    core = client.CoreV1Api(deployed.api.api_client)
    assert NAMESPACE not in {n.metadata.name for n in core.list_namespace().items}
    ours = "app.kubernetes.io/part-of=celery-platform"
    leftovers = [
        *core.list_pod_for_all_namespaces(label_selector=ours).items,
        *core.list_persistent_volume_claim_for_all_namespaces(label_selector=ours).items,
        *client.AppsV1Api(deployed.api.api_client).list_stateful_set_for_all_namespaces(label_selector=ours).items,
    ]
    # Other tests' stacks share the cluster: only this stack's namespace is ours to check.
    assert [o.metadata.name for o in leftovers if o.metadata.namespace == NAMESPACE] == []
    volumes = core.list_persistent_volume().items
    assert [v.metadata.name for v in volumes if v.spec.claim_ref and v.spec.claim_ref.namespace == NAMESPACE] == []
