"""The admission arithmetic, recomputed from the rendered YAML alone: LimitRanger and ResourceQuota admit every pod.

The LimitRange and ResourceQuota are read back from their rendered objects and the pod plans from the rendered
Deployments and StatefulSets, so this checks what `pulumi up` would send, not what the components meant to send.
"""

from __future__ import annotations

import copy
import math
from decimal import Decimal
from typing import Any

import pytest

from celery_platform.builders.admission import PodPlan, check_limit_range, check_quota
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
from tests.manifests.conftest import Render, pod_spec_of

QUOTA_KEYS = {
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "pods",
    "persistentvolumeclaims",
    "requests.storage",
}
MODELLED_KINDS = {"Deployment", "StatefulSet"}


def _resources(mapping: dict[str, Any]) -> Resources:
    assert set(mapping) == {"cpu", "memory"}, f"expected cpu and memory, got {mapping}"
    return Resources(cpu=str(mapping["cpu"]), memory=str(mapping["memory"]))


def limit_range_from(rendered: Render) -> LimitRangeSpec:
    """Build the LimitRangeSpec from the one rendered LimitRange."""
    [limit_range] = rendered.of_kind("LimitRange")
    [limits] = limit_range["spec"]["limits"]
    assert limits["type"] == "Container"
    assert set(limits) == {"type", "default", "defaultRequest", "min", "max", "maxLimitRequestRatio"}, limits
    ratio = limits["maxLimitRequestRatio"]
    return LimitRangeSpec(
        default_request=_resources(limits["defaultRequest"]),
        default=_resources(limits["default"]),
        min=_resources(limits["min"]),
        max=_resources(limits["max"]),
        max_limit_request_ratio=Ratio(cpu=Decimal(str(ratio["cpu"])), memory=Decimal(str(ratio["memory"]))),
    )


def quota_from(rendered: Render) -> QuotaSpec:
    """Build the QuotaSpec from the one rendered ResourceQuota."""
    [quota] = rendered.of_kind("ResourceQuota")
    assert "scopes" not in quota["spec"] and "scopeSelector" not in quota["spec"], "a scoped quota is not modelled"
    hard = quota["spec"]["hard"]
    assert set(hard) == QUOTA_KEYS, f"quota lines not modelled here: {set(hard) ^ QUOTA_KEYS}"
    return QuotaSpec(
        requests_cpu=str(hard["requests.cpu"]),
        requests_memory=str(hard["requests.memory"]),
        limits_cpu=str(hard["limits.cpu"]),
        limits_memory=str(hard["limits.memory"]),
        pods=int(hard["pods"]),
        persistent_volume_claims=int(hard["persistentvolumeclaims"]),
        requests_storage=str(hard["requests.storage"]),
    )


def _max_replicas(rendered: Render, doc: dict[str, Any]) -> int:
    """Return the most pods the object may have: spec.replicas (default 1) or an HPA's maxReplicas."""
    replicas = int(doc["spec"].get("replicas", 1))
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] == doc["kind"] and target["name"] == doc["metadata"]["name"]:
            replicas = max(replicas, int(hpa["spec"]["maxReplicas"]))
    return replicas


def _surge(deployment: dict[str, Any], replicas: int) -> int:
    """Return the extra pods a Deployment rollout may add (maxSurge; a percentage rounds up; default 25%)."""
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type", "RollingUpdate") == "Recreate":
        return 0
    max_surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(max_surge, str) and max_surge.endswith("%"):
        return math.ceil(replicas * int(max_surge[:-1]) / 100)
    return int(max_surge)


def plans_from(rendered: Render) -> list[PodPlan]:
    """Return a PodPlan per rendered Deployment and StatefulSet."""
    plans = []
    for doc in rendered.documents:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        replicas = _max_replicas(rendered, doc) if doc["kind"] in MODELLED_KINDS else 0
        if doc["kind"] == "Deployment":
            plans.append(
                PodPlan(owner=name, replicas=replicas, surge=_surge(doc, replicas), pod_spec=pod_spec_of(doc) or {})
            )
        elif doc["kind"] == "StatefulSet":
            claims = tuple(
                str(t["spec"]["resources"]["requests"]["storage"])
                for t in doc["spec"].get("volumeClaimTemplates") or []
            )
            plans.append(
                PodPlan(owner=name, replicas=replicas, surge=0, pod_spec=pod_spec_of(doc) or {}, claims=claims)
            )
    return plans


def test_the_rendered_guardrails_are_consistent_on_their_own(rendered: Render) -> None:
    assert limit_range_from(rendered).validate("limitRange") == []
    assert quota_from(rendered).validate("quota") == []


def test_every_object_that_creates_pods_or_claims_is_modelled_by_the_arithmetic(rendered: Render) -> None:
    unmodelled = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in rendered.documents
        if (pod_spec_of(d) is not None and d["kind"] not in MODELLED_KINDS) or d["kind"] == "PersistentVolumeClaim"
    ]
    assert not unmodelled, f"extend plans_from() before rendering {unmodelled}"
    assert plans_from(rendered), "the stack renders no workloads"


def test_the_limit_range_admits_every_container_and_init_container(rendered: Render) -> None:
    limit_range = limit_range_from(rendered)
    problems = [str(p) for plan in plans_from(rendered) for p in check_limit_range(plan, limit_range)]
    assert not problems, f"{rendered.stack}: the LimitRanger would refuse:\n" + "\n".join(problems)


def test_the_quota_admits_every_pod_at_full_scale_during_a_rollout(rendered: Render) -> None:
    problems = [str(p) for p in check_quota(plans_from(rendered), quota_from(rendered), limit_range_from(rendered))]
    assert not problems, f"{rendered.stack}: the ResourceQuota would refuse:\n" + "\n".join(problems)


def test_the_quota_check_would_catch_a_deployment_scaled_past_the_pod_quota(rendered: Render) -> None:
    quota, limit_range = quota_from(rendered), limit_range_from(rendered)
    plans = plans_from(rendered)
    index = next(i for i, p in enumerate(plans) if p.owner.startswith("Deployment/"))
    plans[index] = PodPlan(owner=plans[index].owner, replicas=quota.pods, surge=1, pod_spec=plans[index].pod_spec)
    assert any(p.field == "quota.pods" for p in check_quota(plans, quota, limit_range))


def test_the_limit_range_check_would_catch_a_limit_above_the_max(rendered: Render) -> None:
    limit_range = limit_range_from(rendered)
    plan = plans_from(rendered)[0]
    spec = copy.deepcopy(dict(plan.pod_spec))
    spec["containers"][0]["resources"]["limits"]["memory"] = "1Ti"
    broken = PodPlan(owner=plan.owner, replicas=1, surge=0, pod_spec=spec)
    fields = [p.field for p in check_limit_range(broken, limit_range)]
    assert f"{plan.owner}.{spec['containers'][0]['name']}.limits.memory" in fields


@pytest.mark.parametrize(
    ("max_surge", "replicas", "expected"), [(1, 3, 1), ("25%", 3, 1), ("50%", 3, 2), ("0%", 5, 0), (0, 2, 0)]
)
def test_the_surge_of_a_deployment_follows_kubernetes_rounding(max_surge: Any, replicas: int, expected: int) -> None:
    deployment = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge}}}}
    assert _surge(deployment, replicas) == expected
