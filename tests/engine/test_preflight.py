"""Preflight under the real engine: a cluster without KEDA's or the Prometheus Operator's CRDs is refused at preview.

One project, one dev stack, on the session cluster with both sets of CRDs removed for this module (and
installed again after it). The stack is brought up with autoscaling and monitoring off, so that it needs
no CRD, and with a pull secret that does not exist. Then, on the running stack: autoscaling makes `make
preview` and `make up` refuse with one message naming KEDA's CRDs, and leaves the Deployment as it was;
monitoring does the same with the Prometheus Operator's; and the block of docs/operations/preflight.md
turns the check off, verbatim.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.keda_tools import keda_crds
from tests.kube_testenv import KubeAPI
from tests.operator_crds import crds_dir, install_crds, load_crds

STACK = "dev"
NAMESPACE = "celery-dev"
PULL_SECRET = "regcred-not-created"
DOC = REPO / "docs" / "operations" / "preflight.md"
MARKER = "<!-- engine-tested: tests/engine/test_preflight.py -->"


def _pools(autoscaled: bool) -> list[dict[str, Any]]:
    pools: list[dict[str, Any]] = yaml.safe_load((REPO / f"Pulumi.{STACK}.yaml").read_text())["config"][
        "celery-platform:pools"
    ]
    if autoscaled:
        del pools[0]["replicas"]
        pools[0]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4}
    return pools


def _served(api: KubeAPI, group_version: str) -> set[str]:
    group, version = group_version.split("/")
    try:
        found = client.CustomObjectsApi(api.api_client).get_api_resources(group, version)
    except ApiException as err:
        if err.status == 404:
            return set()
        raise
    return {r.name for r in found.resources or []}


@pytest.fixture(scope="module")
def without_crds(cluster: KubeAPI) -> Iterator[KubeAPI]:
    """The session cluster with KEDA's and the Prometheus Operator's CRDs deleted; installed again after."""
    crds = [*keda_crds(), *load_crds(crds_dir())]
    extensions = client.ApiextensionsV1Api(cluster.api_client)
    for crd in crds:
        extensions.delete_custom_resource_definition(crd["metadata"]["name"])
    # The API server's finalizer removes a CRD asynchronously; on a loaded machine that took over 120 s once.
    deadline = time.monotonic() + 300
    while served := _served(cluster, "keda.sh/v1alpha1") | (
        {"servicemonitors", "prometheusrules"} & _served(cluster, "monitoring.coreos.com/v1")
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"the deleted CRDs are still served after 300 s: {sorted(served)}")
        time.sleep(0.5)
    try:
        yield cluster
    finally:
        install_crds(cluster, crds)


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, without_crds: KubeAPI, shared_venvs: None
) -> Iterator[tuple[Project, str]]:
    """The dev stack up, needing no CRD, with a pull secret that does not exist; the output of its `make up`."""
    project = make_project(tmp_path_factory.mktemp("preflight"), toolchain, without_crds)
    project.init_stack(STACK, "postgresql://app:engine-pw@db.internal:5432/app")
    project.set_config(STACK, "celery-platform:monitoring", {"enabled": False})
    project.set_config(STACK, "celery-platform:pod", {"imagePullSecrets": [PULL_SECRET]})
    up = project.sh(f"make up STACK={STACK}", timeout=1200)
    try:
        yield project, up.stdout + up.stderr
    finally:
        project.pulumi("state", "unprotect", "--stack", STACK, "--all", "--yes", check=False)
        project.pulumi("destroy", "--stack", STACK, "--yes", check=False)


def _deployment(project: Project, name: str) -> client.V1Deployment:
    return client.AppsV1Api(project.api.api_client).read_namespaced_deployment(name, NAMESPACE)


def _refused(project: Project, command: str) -> str:
    done = project.sh(command, check=False, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "Traceback" not in output and "<{%" not in output, output[-3000:]
    return output


def test_a_missing_pull_secret_is_named_in_a_warning_and_the_stack_still_deploys(
    deployed: tuple[Project, str],
) -> None:
    _, output = deployed
    assert f"preflight: namespace 'celery-dev' has no Secret '{PULL_SECRET}' (pod.imagePullSecrets[0])" in output
    assert _deployment(deployed[0], "celery-main").spec.replicas == 1


def test_autoscaling_without_kedas_crds_is_refused_at_preview_and_up_and_leaves_the_deployment_alone(
    deployed: tuple[Project, str],
) -> None:
    project, _ = deployed
    before = _deployment(project, "celery-main")
    project.set_config(STACK, "celery-platform:pools", _pools(autoscaled=True))
    try:
        for command in (f"make preview STACK={STACK}", f"make up STACK={STACK}"):
            output = _refused(project, command)
            assert "has no CustomResourceDefinition for 2 kind(s)" in output, output[-3000:]
            assert "triggerauthentications.keda.sh, scaledobjects.keda.sh (keda.sh/v1alpha1)" in output
            assert "needed by pools[0].autoscaling: install KEDA" in output
            # One refusal, before the program registered anything: the engine planned no step.
            assert output.count("has no CustomResourceDefinition") == 1
        after = _deployment(project, "celery-main")
        assert (after.metadata.generation, after.spec.replicas) == (before.metadata.generation, 1)
    finally:
        project.set_config(STACK, "celery-platform:pools", _pools(autoscaled=False))


def test_monitoring_without_the_prometheus_operators_crds_is_refused_at_preview_and_up(
    deployed: tuple[Project, str],
) -> None:
    project, _ = deployed
    before = _deployment(project, "celery-main").metadata.generation
    project.pulumi("config", "rm", "--stack", STACK, "celery-platform:monitoring")
    try:
        for command in (f"make preview STACK={STACK}", f"make up STACK={STACK}"):
            output = _refused(project, command)
            assert "servicemonitors.monitoring.coreos.com, prometheusrules.monitoring.coreos.com" in output
            assert "needed by monitoring.prometheusOperator: install the Prometheus Operator" in output
        assert _deployment(project, "celery-main").metadata.generation == before
        # The exporter is the first object that monitoring adds: nothing of it was created.
        names = [
            d.metadata.name
            for d in client.AppsV1Api(project.api.api_client).list_namespaced_deployment(NAMESPACE).items
        ]
        assert not [n for n in names if "exporter" in n], names
    finally:
        project.set_config(STACK, "celery-platform:monitoring", {"enabled": False})


def doc_block() -> str:
    text = DOC.read_text()
    return text[text.index(MARKER) :].split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_docs_block_turns_preflight_off_and_the_preview_then_passes(deployed: tuple[Project, str]) -> None:
    project, _ = deployed
    project.set_config(STACK, "celery-platform:pools", _pools(autoscaled=True))
    try:
        done = project.sh(doc_block(), timeout=1200)  # verbatim, one shell: the first failure fails the test
        assert "has no CustomResourceDefinition" not in done.stdout + done.stderr
        assert "scaledobjects" in done.stdout.lower() or "ScaledObject" in done.stdout
    finally:
        project.pulumi("config", "rm", "--stack", STACK, "preflight")
        project.set_config(STACK, "celery-platform:pools", _pools(autoscaled=False))
