"""An autoscaled pool under the real engine: KEDA's HPA owns spec.replicas, and `pulumi up` never fights it.

The dev stack is brought up with its first pool autoscaled (KEDA's CRDs are installed; the operator is
not, so the test plays the HPA: it scales the Deployment through the scale subresource, as the HPA's
controller does, under its field manager). An image bump is then applied with `pulumi up`. The
autoscaled pool keeps the HPA's replica count and the update succeeds; the fixed pool, whose
spec.replicas the program owns, is the control: the same scaling meets the program's value again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.kube_testenv import KubeAPI

STACK = "dev"
NAMESPACE = "celery-dev"
HPA_MANAGER = "kube-controller-manager"


def _autoscaled_pools() -> str:
    config = yaml.safe_load((REPO / f"Pulumi.{STACK}.yaml").read_text())["config"]
    pools = yaml.safe_load(config["celery-platform:pools"])
    del pools[0]["replicas"]
    pools[0]["autoscaling"] = {"minReplicas": 0, "maxReplicas": 4}
    return yaml.safe_dump(pools, sort_keys=False)


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("autoscaling"), toolchain, cluster)
    project.init_stack(STACK, "postgresql://app:engine-pw@db.internal:5432/app")
    project.set_config(STACK, "celery-platform:pools", _autoscaled_pools())
    project.sh(f"make up STACK={STACK}", timeout=1200)
    try:
        yield project
    finally:
        project.pulumi("state", "unprotect", "--stack", STACK, "--all", "--yes", check=False)
        project.pulumi("destroy", "--stack", STACK, "--yes", check=False)


def _deployment(project: Project, name: str) -> client.V1Deployment:
    return client.AppsV1Api(project.api.api_client).read_namespaced_deployment(name, NAMESPACE)


def _scale_as_the_hpa(project: Project, name: str, replicas: int) -> None:
    client.AppsV1Api(project.api.api_client).patch_namespaced_deployment_scale(
        name, NAMESPACE, {"spec": {"replicas": replicas}}, field_manager=HPA_MANAGER
    )


def _replicas_owners(deployment: client.V1Deployment) -> set[str]:
    return {
        entry.manager
        for entry in deployment.metadata.managed_fields or []
        if "f:replicas" in ((entry.fields_v1 or {}).get("f:spec") or {})
    }


def test_the_scaled_object_and_trigger_authentication_are_applied(deployed: Project) -> None:
    custom = client.CustomObjectsApi(deployed.api.api_client)
    [scaled] = custom.list_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects")["items"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "celery-main"
    assert {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]} >= {"default", "default\x06\x169"}
    [auth] = custom.list_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "triggerauthentications")["items"]
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == ["password"]


def test_the_program_never_owns_the_autoscaled_pools_replicas(deployed: Project) -> None:
    assert _replicas_owners(_deployment(deployed, "celery-main")) <= {"kube-controller-manager"}
    assert _replicas_owners(_deployment(deployed, "celery-io")) - {HPA_MANAGER}, "the fixed pool's are ours"


def test_an_update_after_the_hpa_scaled_keeps_its_count_and_previews_clean(deployed: Project) -> None:
    _scale_as_the_hpa(deployed, "celery-main", 3)
    _scale_as_the_hpa(deployed, "celery-io", 3)
    deployed.pulumi("preview", "--stack", STACK, "--expect-no-changes")
    deployed.set_config(STACK, "celery-platform:image", "ghcr.io/acme/celery-sample-app:0.1.1")
    deployed.sh(f"make up STACK={STACK}", timeout=1200)
    main = _deployment(deployed, "celery-main")
    assert main.spec.replicas == 3, "the update must leave the HPA's replica count alone"
    assert main.spec.template.spec.containers[0].image.endswith(":0.1.1")
    # The control: the fixed pool's replicas are the program's, so its update took the count back.
    assert _deployment(deployed, "celery-io").spec.replicas == 1
    deployed.pulumi("preview", "--stack", STACK, "--expect-no-changes")
