"""An autoscaled pool under the real engine: KEDA's HPA owns spec.replicas, and `pulumi up` never fights it.

The dev stack is brought up with its first pool autoscaled (KEDA's CRDs are installed; the operator is
not, so the test plays the HPA: it scales the Deployment through the scale subresource, as the HPA's
controller does, under its field manager). An image bump is then applied with `pulumi up`: the
autoscaled pool keeps the HPA's replica count and the update succeeds. The control is the fixed pool,
whose spec.replicas the program applies: scaled the same way, its next update fails with the
server-side-apply conflict of pulumi-kubernetes #2491.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, brought_up, make_project
from tests.kube_testenv import KubeAPI

STACK = "dev"
NAMESPACE = "celery-dev"
HPA_MANAGER = "kube-controller-manager"


def _autoscaled_pools() -> list[dict[str, object]]:
    config = yaml.safe_load((REPO / f"Pulumi.{STACK}.yaml").read_text())["config"]
    pools: list[dict[str, object]] = config["celery-platform:pools"]
    del pools[0]["replicas"]
    pools[0]["autoscaling"] = {"minReplicas": 0, "maxReplicas": 4}
    return pools


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("autoscaling"), toolchain, cluster)
    database_url = "postgresql://app:engine-pw@db.internal:5432/app"
    with brought_up(project, STACK, database_url, {"celery-platform:pools": _autoscaled_pools()}) as up:
        yield up


def _deployment(project: Project, name: str) -> client.V1Deployment:
    return client.AppsV1Api(project.api.api_client).read_namespaced_deployment(name, NAMESPACE)


def _scale_as_the_hpa(project: Project, name: str, replicas: int) -> None:
    client.AppsV1Api(project.api.api_client).patch_namespaced_deployment_scale(
        name, NAMESPACE, {"spec": {"replicas": replicas}}, field_manager=HPA_MANAGER
    )


def _replicas_appliers(deployment: client.V1Deployment) -> set[str]:
    """Managers whose server-side *apply* owns spec.replicas (a create is a POST, which owns defaults too)."""
    return {
        entry.manager
        for entry in deployment.metadata.managed_fields or []
        if entry.operation == "Apply" and "f:replicas" in ((entry.fields_v1 or {}).get("f:spec") or {})
    }


def test_the_scaled_object_and_trigger_authentication_are_applied(deployed: Project) -> None:
    custom = client.CustomObjectsApi(deployed.api.api_client)
    [scaled] = custom.list_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects")["items"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "celery-main"
    assert {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]} >= {"default", "default\x06\x169"}
    [auth] = custom.list_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "triggerauthentications")["items"]
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == ["password"]


def test_an_update_after_the_hpa_scaled_keeps_its_count_and_previews_clean(deployed: Project) -> None:
    _scale_as_the_hpa(deployed, "celery-main", 3)
    deployed.pulumi("preview", "--stack", STACK, "--expect-no-changes")
    deployed.set_config(STACK, "celery-platform:image", "ghcr.io/acme/celery-sample-app:0.1.1")
    deployed.sh(f"make up STACK={STACK}", timeout=1200)
    main = _deployment(deployed, "celery-main")
    assert main.spec.replicas == 3, "the update must leave the HPA's replica count alone"
    assert main.spec.template.spec.containers[0].image.endswith(":0.1.1")
    # The program's server-side apply owns the fixed pool's replicas, never the autoscaled pool's.
    assert _replicas_appliers(main) == set(), main.metadata.managed_fields
    assert _replicas_appliers(_deployment(deployed, "celery-io")), "the fixed pool's replicas are the program's"
    deployed.pulumi("preview", "--stack", STACK, "--expect-no-changes")


def test_the_control_a_pool_with_replicas_of_ours_meets_the_hpa_in_a_field_conflict(deployed: Project) -> None:
    # pulumi-kubernetes #2491, which an autoscaled pool avoids by leaving spec.replicas out.
    _scale_as_the_hpa(deployed, "celery-io", 3)
    deployed.set_config(STACK, "celery-platform:image", "ghcr.io/acme/celery-sample-app:0.1.2")
    failed = deployed.sh(f"make up STACK={STACK}", timeout=1200, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert 'conflict with "kube-controller-manager"' in output and ".spec.replicas" in output, output[-3000:]
    assert '"celery-dev/celery-io"' in output and '"celery-dev/celery-main"' not in output
