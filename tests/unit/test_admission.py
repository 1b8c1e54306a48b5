"""Admission arithmetic: LimitRanger and ResourceQuota recomputed before apply, as the API server would."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from celery_platform.builders.admission import PodPlan, check_limit_range, check_quota, check_routes, pod_totals
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
from celery_platform.config.specs import PodResources, PoolSpec, max_memory_per_child_kib, memory_warning

LIMITS = LimitRangeSpec(
    default_request=Resources(cpu="100m", memory="128Mi"),
    default=Resources(cpu="150m", memory="256Mi"),
    min=Resources(cpu="10m", memory="16Mi"),
    max=Resources(cpu="2", memory="4Gi"),
    max_limit_request_ratio=Ratio(cpu=Decimal(2), memory=Decimal(2)),
)


def pod(cpu: str, cpu_limit: str, init: dict[str, Any] | None = None) -> dict[str, Any]:
    worker = {
        "name": "worker",
        "resources": {"requests": {"cpu": cpu, "memory": "512Mi"}, "limits": {"cpu": cpu_limit, "memory": "1Gi"}},
    }
    return {"containers": [worker], "initContainers": [init] if init else []}


def with_ratio(cpu: str) -> LimitRangeSpec:
    return LimitRangeSpec(
        default_request=LIMITS.default_request,
        default=Resources(cpu="100m", memory="256Mi"),
        min=LIMITS.min,
        max=LIMITS.max,
        max_limit_request_ratio=Ratio(cpu=Decimal(cpu), memory=Decimal(2)),
    )


def test_the_reports_400m_800m_worker_passes_under_ratio_2() -> None:
    plan = PodPlan(owner="pools[main]", replicas=3, surge=1, pod_spec=pod("400m", "800m"))
    assert check_limit_range(plan, with_ratio("2")) == []


def test_fails_when_the_reports_400m_800m_worker_meets_ratio_1_5() -> None:
    plan = PodPlan(owner="pools[main]", replicas=3, surge=1, pod_spec=pod("400m", "800m"))
    [problem] = check_limit_range(plan, with_ratio("1.5"))
    assert str(problem) == (
        "pools[main].worker.cpu: limit/request ratio is above the LimitRange maxLimitRequestRatio "
        "(got 800m/400m = 2, expected at most 1.5)"
    )


def test_an_init_container_without_resources_gets_the_limit_range_defaults() -> None:
    bare = {"name": "wait-for-broker"}
    plan = PodPlan(owner="beat", replicas=1, surge=0, pod_spec=pod("400m", "800m", init=bare))
    assert check_limit_range(plan, LIMITS) == []
    assert pod_totals(plan.pod_spec, LIMITS)["requests.cpu"] == Decimal("0.4")


def test_fails_when_an_init_container_breaks_the_limit_range_max() -> None:
    greedy = {"name": "wait-for-broker", "resources": {"limits": {"cpu": "3", "memory": "64Mi"}}}
    plan = PodPlan(owner="pools[io]", replicas=1, surge=0, pod_spec=pod("400m", "800m", init=greedy))
    messages = [str(p) for p in check_limit_range(plan, LIMITS)]
    assert (
        "pools[io].wait-for-broker.limits.cpu: is above the LimitRange max (got 3000m, expected <= 2000m)" in messages
    )


def test_a_request_given_without_its_limit_is_checked_against_the_default_limit() -> None:
    only_request = {"containers": [{"name": "w", "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}}}]}
    plan = PodPlan(owner="p", replicas=1, surge=0, pod_spec=only_request)
    messages = [str(p) for p in check_limit_range(plan, LIMITS)]
    assert messages == [
        "p.w.cpu: limit/request ratio is above the LimitRange maxLimitRequestRatio "
        "(got 150m/50m = 3, expected at most 2)"
    ]


def test_the_quota_counts_every_replica_plus_the_rollout_surge() -> None:
    plan = PodPlan(owner="pools[main]", replicas=3, surge=1, pod_spec=pod("400m", "800m"))
    assert (
        check_quota(
            [plan], QuotaSpec(requests_cpu="1.6", limits_cpu="3.2", requests_memory="2Gi", limits_memory="4Gi"), LIMITS
        )
        == []
    )
    [problem] = check_quota(
        [plan], QuotaSpec(requests_cpu="1.5", limits_cpu="3.2", requests_memory="2Gi", limits_memory="4Gi"), LIMITS
    )
    assert problem.field == "quota.requestsCpu"
    assert "1600m (pools[main] 4 x 400m)" in problem.got
    assert problem.expected == "at most 1500m"


def test_an_init_container_larger_than_the_app_counts_in_full() -> None:
    big_init = {
        "name": "migrate",
        "resources": {"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},
    }
    totals = pod_totals(pod("400m", "800m", init=big_init), LIMITS)
    assert totals["requests.cpu"] == Decimal(1)
    assert totals["requests.memory"] == 512 * 1024**2


def test_fails_when_the_pods_overflow_the_quota_count() -> None:
    plans = [PodPlan(owner=f"pools[p{i}]", replicas=2, surge=1, pod_spec=pod("100m", "200m")) for i in range(3)]
    problems = check_quota(
        plans,
        QuotaSpec(requests_cpu="100", limits_cpu="100", requests_memory="100Gi", limits_memory="100Gi", pods=8),
        LIMITS,
    )
    assert [p.field for p in problems] == ["quota.pods"]
    assert problems[0].got.startswith("9 ")


def test_every_named_or_routed_queue_needs_a_consuming_pool() -> None:
    pools = {"main": ["default", "high"], "io": ["email"]}
    assert check_routes(pools, ["default", "email"], {"app.tasks.send": "email"}) == []
    problems = check_routes(pools, ["default", "reports"], {"app.tasks.render": "media"})
    assert [p.field for p in problems] == ["queues[reports]", "taskRoutes.app.tasks.render"]


@given(st.sampled_from(["256Mi", "512Mi", "1Gi", "2Gi"]), st.integers(min_value=1, max_value=16))
def test_children_never_get_more_memory_than_the_limit_allows(limit: str, concurrency: int) -> None:
    from celery_platform.config.quantities import parse_memory

    resources = PodResources(requests=Resources(cpu="100m", memory="128Mi"), limits=Resources(cpu="200m", memory=limit))
    per_child = max_memory_per_child_kib(resources, concurrency) * 1024
    assert per_child * concurrency <= parse_memory(limit)


def test_a_warning_fires_when_the_memory_limit_is_too_small_for_the_concurrency() -> None:
    small = PoolSpec(
        name="main",
        queues=["q"],
        concurrency=8,
        resources=PodResources(
            requests=Resources(cpu="100m", memory="256Mi"), limits=Resources(cpu="200m", memory="512Mi")
        ),
    )
    warning = memory_warning("pools[0]", small)
    assert warning is not None and "concurrency 8" in warning and "512Mi" in warning
    roomy = PoolSpec(
        name="main",
        queues=["q"],
        concurrency=4,
        resources=PodResources(
            requests=Resources(cpu="400m", memory="512Mi"), limits=Resources(cpu="800m", memory="1Gi")
        ),
    )
    assert memory_warning("pools[0]", roomy) is None
