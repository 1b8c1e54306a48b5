"""PlatformNamespace under mocks: Pod Security, LimitRange, quota and default-deny as configured."""

from __future__ import annotations

from decimal import Decimal

import pytest

from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
from celery_platform.config.problems import ValidationError
from celery_platform.render.mocks import RenderMocks
from celery_platform.resources.namespace import NamespaceArgs, PlatformNamespace
from tests.conftest import objects_of, resolve, run

LIMITS = LimitRangeSpec(
    default_request=Resources(cpu="100m", memory="128Mi"),
    default=Resources(cpu="150m", memory="256Mi"),
    min=Resources(cpu="10m", memory="16Mi"),
    max=Resources(cpu="2", memory="4Gi"),
    max_limit_request_ratio=Ratio(cpu=Decimal("1.5"), memory=Decimal(2)),
)
QUOTA = QuotaSpec(requests_cpu="3", limits_cpu="6", pods=12)


def make(mocks: RenderMocks) -> PlatformNamespace:
    return run(lambda: PlatformNamespace("plat", NamespaceArgs(name="team-a", limit_range=LIMITS, quota=QUOTA)))


def test_the_namespace_enforces_restricted_pod_security(mocks: RenderMocks) -> None:
    namespace = make(mocks)
    [ns] = objects_of(mocks, "Namespace")
    labels = ns["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels["app.kubernetes.io/part-of"] == "celery-platform"
    assert resolve(namespace.name) == "team-a"


def test_the_limit_range_carries_the_configured_values(mocks: RenderMocks) -> None:
    make(mocks)
    [limit_range] = objects_of(mocks, "LimitRange")
    [limits] = limit_range["spec"]["limits"]
    assert limits["type"] == "Container"
    assert limits["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}
    assert limits["default"] == {"cpu": "150m", "memory": "256Mi"}
    assert limits["min"] == {"cpu": "10m", "memory": "16Mi"}
    assert limits["max"] == {"cpu": "2", "memory": "4Gi"}
    assert limits["maxLimitRequestRatio"] == {"cpu": "1.5", "memory": "2"}
    assert limit_range["metadata"]["namespace"] == "team-a"


def test_the_quota_carries_the_configured_values(mocks: RenderMocks) -> None:
    namespace = make(mocks)
    [quota] = objects_of(mocks, "ResourceQuota")
    assert quota["spec"]["hard"]["requests.cpu"] == "3"
    assert quota["spec"]["hard"]["limits.cpu"] == "6"
    assert quota["spec"]["hard"]["pods"] == "12"
    assert namespace.quota is QUOTA and namespace.limit_range is LIMITS, "exposed as plain data for admission checks"


def test_every_pod_is_denied_all_traffic_unless_a_policy_allows_it(mocks: RenderMocks) -> None:
    make(mocks)
    deny = next(p for p in objects_of(mocks, "NetworkPolicy") if p["metadata"]["name"].endswith("default-deny"))
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_fails_when_the_ratio_is_below_one_before_anything_is_registered(mocks: RenderMocks) -> None:
    bad = LimitRangeSpec(max_limit_request_ratio=Ratio(cpu=Decimal("0.5")))
    with pytest.raises(ValidationError) as caught:
        run(lambda: PlatformNamespace("plat", NamespaceArgs(name="Team A", limit_range=bad)))
    fields = [p.field for p in caught.value.problems]
    assert fields == ["name", "limitRange.maxLimitRequestRatio.cpu"]
    assert mocks.objects == []
