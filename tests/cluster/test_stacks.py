"""Every stack file, applied as rendered to a real kube-apiserver: the closest thing to `pulumi up` here.

Each stack is rendered by the CLI (``python -m celery_platform.render``), applied server-side in render order with
strict field validation into the namespace it renders (dev: celery-dev, prod: celery-prod), and then
left to the real admission plugins (LimitRanger, ResourceQuota, PodSecurity restricted) and controllers.
Without nodes pods stay Pending, which is fine: admission already accepted them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from apply_rendered import Observation, finish_render, observe, read_object, render_stack, report
from kubernetes.utils.quantity import parse_quantity

from celery_platform.builders.admission import pod_totals
from celery_platform.config.guardrails import LimitRangeSpec, Ratio, Resources
from celery_platform.render.stack_files import available_stacks

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

STACKS = available_stacks()
APPLY_SCRIPT = Path(__file__).with_name("apply_rendered.py")
MANAGER = "celery-platform"
# Controllers write these kinds' status, so only our own managed fields and the generation must stay put.
STATUS_WRITTEN = {"Deployment", "StatefulSet", "ResourceQuota", "PodDisruptionBudget", "Namespace"}


@dataclass
class Deployed:
    """One stack, applied: what was rendered, what the server stored, and what the controllers did."""

    stack: str
    path: Path
    docs: list[dict[str, Any]]
    served: list[dict[str, Any]]
    seen: Observation

    @property
    def namespace(self) -> str:
        [ns] = [d for d in self.docs if d["kind"] == "Namespace"]
        return str(ns["metadata"]["name"])

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[dict[str, Any]]]]:
    """Every stack rendered by the CLI, the renders running side by side."""
    out_dir = tmp_path_factory.mktemp("rendered")
    procs = {stack: render_stack(stack, out_dir / f"{stack}.yaml") for stack in STACKS}
    return {
        stack: (out_dir / f"{stack}.yaml", finish_render(p, out_dir / f"{stack}.yaml")) for stack, p in procs.items()
    }


@pytest.fixture(scope="module", params=STACKS)
def deployed(
    request: pytest.FixtureRequest, kube_api: KubeAPI, rendered: dict[str, tuple[Path, list[dict[str, Any]]]]
) -> Iterator[Deployed]:
    """The stack applied in render order, once the controllers made every pod they could."""
    stack = request.param
    path, docs = rendered[stack]
    served = kube_api.apply(docs)
    [namespace] = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    yield Deployed(stack, path, docs, served, observe(kube_api.api_client, namespace, docs))


def _failure(deployed: Deployed) -> str:
    return f"stack {deployed.stack}:\n{report(deployed.seen)}"


def test_every_rendered_object_is_stored_as_applied_with_strict_field_validation(deployed: Deployed) -> None:
    stored = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in deployed.served]
    wanted = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in deployed.docs]
    assert stored == wanted
    namespaces = {ns for kind, ns, _ in wanted if kind != "Namespace"}
    assert namespaces == {deployed.namespace}, "every object lands in the stack's own namespace"


def test_each_deployment_gets_one_replicaset_and_a_pod_per_replica(deployed: Deployed) -> None:
    deployments = deployed.of_kind("Deployment")
    assert deployments, "a stack without a Deployment proves little here"
    for doc in deployments:
        name = doc["metadata"]["name"]
        state = deployed.seen.workloads[f"Deployment/{name}"]
        assert len(deployed.seen.replicasets.get(name, [])) == 1, _failure(deployed)
        assert len(state.pods) == doc["spec"]["replicas"], _failure(deployed)


def test_each_statefulset_gets_exactly_pod_0_and_its_claims(deployed: Deployed) -> None:
    # OrderedReady: pod-0 must be Ready before pod-1 is made, and with no nodes it never is.
    for doc in deployed.of_kind("StatefulSet"):
        name = doc["metadata"]["name"]
        state = deployed.seen.workloads[f"StatefulSet/{name}"]
        assert state.pods == [f"{name}-0"], _failure(deployed)
        templates = [t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []]
        assert sorted(state.claims) == sorted(f"{t}-{name}-0" for t in templates), _failure(deployed)


def test_redis_gets_a_persistent_volume_claim_exactly_when_the_stack_asks_for_one(deployed: Deployed) -> None:
    [redis] = [d for d in deployed.of_kind("StatefulSet") if d["metadata"]["name"] == "redis"]
    persistent = bool(redis["spec"].get("volumeClaimTemplates"))
    assert persistent == (deployed.stack == "prod"), "prod runs a persistent Redis, dev does not"
    claims = deployed.seen.workloads["StatefulSet/redis"].claims
    assert claims == (["data-redis-0"] if persistent else []), _failure(deployed)


def test_admission_refuses_no_pod_of_the_stack(deployed: Deployed) -> None:
    assert deployed.seen.failed_create == [], _failure(deployed)


def test_quota_usage_stays_within_every_hard_limit(deployed: Deployed) -> None:
    [quota] = deployed.seen.quota.values()
    assert set(quota) == set(deployed.of_kind("ResourceQuota")[0]["spec"]["hard"]), _failure(deployed)
    assert deployed.seen.over_quota() == [], _failure(deployed)


def _limit_range(deployed: Deployed) -> LimitRangeSpec:
    [limits] = deployed.of_kind("LimitRange")[0]["spec"]["limits"]

    def res(key: str) -> Resources:
        return Resources(cpu=str(limits[key]["cpu"]), memory=str(limits[key]["memory"]))

    ratio = limits["maxLimitRequestRatio"]
    return LimitRangeSpec(
        default_request=res("defaultRequest"),
        default=res("default"),
        min=res("min"),
        max=res("max"),
        max_limit_request_ratio=Ratio(cpu=Decimal(str(ratio["cpu"])), memory=Decimal(str(ratio["memory"]))),
    )


def test_quota_usage_equals_our_per_pod_arithmetic(deployed: Deployed) -> None:
    # Our check_quota adds each pod's pod_totals(); the quota controller's status.used is the real sum.
    limit_range = _limit_range(deployed)
    expected: dict[str, Decimal] = {}
    for doc in deployed.of_kind("Deployment") + deployed.of_kind("StatefulSet"):
        state = deployed.seen.workloads[f"{doc['kind']}/{doc['metadata']['name']}"]
        for key, amount in pod_totals(doc["spec"]["template"]["spec"], limit_range).items():
            expected[key] = expected.get(key, Decimal(0)) + amount * len(state.pods)
        expected["pods"] = expected.get("pods", Decimal(0)) + len(state.pods)
    [quota] = deployed.seen.quota.values()
    used = {line: Decimal(str(parse_quantity(value))) for line, (value, _) in quota.items() if line in expected}
    assert used == expected, _failure(deployed)


def _state(kube_api: KubeAPI, deployed: Deployed) -> dict[str, tuple[str, Any, Any]]:
    state = {}
    for doc in deployed.docs:
        meta = read_object(kube_api.api_client, doc)["metadata"]
        ours = [m for m in meta.get("managedFields", []) if m["manager"] == MANAGER and m["operation"] == "Apply"]
        version = None if doc["kind"] in STATUS_WRITTEN else meta["resourceVersion"]
        state[f"{doc['kind']}/{meta['name']}"] = (version, meta.get("generation"), ours)
    return state


def test_applying_the_rendered_yaml_again_with_an_independent_script_changes_nothing(
    kube_api: KubeAPI, deployed: Deployed
) -> None:
    before = _state(kube_api, deployed)
    script = subprocess.run(
        [sys.executable, str(APPLY_SCRIPT), "--kubeconfig", str(kube_api.kubeconfig), str(deployed.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert script.returncode == 0, f"{script.stdout}\n{script.stderr}"
    after = _state(kube_api, deployed)
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert changed == {}, "a second apply of the same YAML wrote something (resourceVersion, generation, fields)"
    assert all(generation in (None, 1) for _, generation, _ in after.values())


def test_the_monitoring_objects_are_stored_and_the_server_refuses_an_unknown_field(
    kube_api: KubeAPI, deployed: Deployed
) -> None:
    from kubernetes.client.rest import ApiException

    from tests.kube_testenv import apply_manifests

    kinds = {d["kind"] for d in deployed.served}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds, _failure(deployed)
    [monitor] = deployed.of_kind("ServiceMonitor")
    bad = {**monitor, "spec": {**monitor["spec"], "scrapeEvery": "30s"}}
    with pytest.raises(ApiException) as refused:
        apply_manifests(kube_api.api_client, [bad])
    assert "scrapeEvery" in str(refused.value.body), refused.value.body
