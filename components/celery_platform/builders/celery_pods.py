"""Pure builders of the worker and beat pods, and the admission checks of every Celery pod of a platform."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from celery_platform.builders.admission import PodPlan, check_limit_range, check_quota, unique
from celery_platform.builders.labels import selector_labels
from celery_platform.builders.workloads import (
    Refs,
    beat_container,
    build_pod_spec,
    celery_volumes,
    wait_for_broker,
    worker_container,
)
from celery_platform.config.autoscaling import (
    is_autoscaled,
    worst_case_replicas,
)
from celery_platform.config.broker import BrokerTLS
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.podsettings import PodSettings, ServiceAccount, apply_to_pod
from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import parse_memory
from celery_platform.config.specs import BeatSpec, PoolSpec
from celery_platform.config.workload import WorkloadSettings

ROLLOUT_SURGE = 1


def celery_pod_spec(
    settings: WorkloadSettings,
    refs: Refs,
    container: dict[str, Any],
    grace_seconds: int,
    pod: PodSettings,
    spread_labels: dict[str, str] | None = None,
    service_account_default: str = "celery",
) -> dict[str, Any]:
    """Return a Celery pod spec: the broker wait, the writable /tmp and the hooks around one container,
    then the pod settings (identity, placement, extra env and volumes)."""
    spec = build_pod_spec(
        container=container,
        init_containers=[wait_for_broker(settings.redis_image, refs, settings.init_resources)],
        volumes=celery_volumes(refs),
        run_as_user=settings.run_as_user,
        grace_seconds=grace_seconds,
    )
    return apply_to_pod(spec, pod, selector=spread_labels, service_account_default=service_account_default)


def worker_pod_spec(
    settings: WorkloadSettings, pool: PoolSpec, refs: Refs, instance: str, service_account_default: str = "celery"
) -> dict[str, Any]:
    """Return a pool's pod spec (the same function feeds admission and the Deployment)."""
    pod = settings.pod.merged(pool.pod)
    container = worker_container(
        image=settings.image,
        app=settings.app,
        pool=pool,
        refs=refs,
        longest_task_seconds=settings.longest_task_seconds,
        heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
        python_path=pod.python_path or (),
        memory_volume_bytes=pod.memory_volume_bytes(),
        task_routes=settings.task_routes,
    )
    grace = pool.grace_period_seconds(settings.longest_task_seconds)
    spread = selector_labels("celery-worker", instance)
    return celery_pod_spec(settings, refs, container, grace, pod, spread, service_account_default)


def beat_pod_spec(settings: WorkloadSettings, beat: BeatSpec, refs: Refs, instance: str = "celery") -> dict[str, Any]:
    """Return beat's pod spec; beat runs no task, so a short grace period suffices."""
    pod = settings.pod.merged(beat.pod)
    container = beat_container(
        image=settings.image,
        app=settings.app,
        beat=beat,
        refs=refs,
        longest_task_seconds=settings.longest_task_seconds,
        heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
        python_path=pod.python_path or (),
        task_routes=settings.task_routes,
    )
    # One pod: nothing to spread unless the settings ask for it explicitly.
    spread = selector_labels("celery-beat", instance) if pod.topology_spread else None
    return celery_pod_spec(settings, refs, container, 30, pod, spread, instance)


# Stand-in names for admission planning: only resources matter there, never what a ref points to.
PLAN_REFS = Refs(
    secret_name="secrets", secret_keys=(), broker_secret_name="broker", broker_host="redis", hooks_config_map="hooks"
)


def plan_refs(tls: BrokerTLS | None) -> Refs:
    """Return PLAN_REFS with the broker's TLS, which adds a CA volume."""
    return Refs(**{**PLAN_REFS.__dict__, "broker_tls": tls})


def celery_plans(
    settings: WorkloadSettings, pools: Sequence[PoolSpec], beat: BeatSpec, tls: BrokerTLS | None = None
) -> list[PodPlan]:
    """Return the pools' and beat's pods as admission sees them (worst case: surge on every pool, and an
    autoscaled pool at its maxReplicas)."""
    refs = plan_refs(tls)
    plans = [
        PodPlan(
            owner=f"pools[{p.name}]",
            replicas=worst_case_replicas(p),
            surge=ROLLOUT_SURGE if worst_case_replicas(p) else 0,
            pod_spec=worker_pod_spec(settings, p, refs, p.name),
            replicas_field="autoscaling.maxReplicas" if is_autoscaled(p) else "",
            init_field="initResources",
        )
        for p in pools
    ]
    if beat.enabled:
        plans.append(
            PodPlan(
                owner="beat",
                replicas=1,
                surge=0,
                pod_spec=beat_pod_spec(settings, beat, refs),
                init_field="initResources",
            )
        )
    return plans


def platform_problems(
    settings: WorkloadSettings,
    broker_plans: Sequence[PodPlan],
    pools: Sequence[PoolSpec],
    beat: BeatSpec,
    limit_range: LimitRangeSpec,
    quota: QuotaSpec | None,
    tls: BrokerTLS | None = None,
    extra_plans: Sequence[PodPlan] = (),
) -> list[Problem]:
    """Check every pod of a platform (our broker's, none for an external one; pools, beat, and ``extra_plans``
    such as the metrics exporter) against the LimitRange, the worst case against the quota when there is
    one: what the API server would refuse, found at preview."""
    plans = [*broker_plans, *celery_plans(settings, pools, beat, tls), *extra_plans]
    problems = [p for plan in plans for p in check_limit_range(plan, limit_range)]
    if quota is not None:
        problems += check_quota(plans, quota, limit_range)
    return unique(problems)


def validate_pools(pools: Sequence[PoolSpec]) -> list[Problem]:
    """Return every problem of the pools, including a name used twice."""
    problems = [p for i, pool in enumerate(pools) for p in pool.validate(f"pools[{i}]")]
    counts = Counter(pool.name for pool in pools)
    for name in sorted(n for n, count in counts.items() if count > 1):
        problems.append(Problem("pools", "a pool name is used twice", repr(name), "unique pool names"))
    return problems


def pod_problems(settings: WorkloadSettings, pools: Sequence[PoolSpec], beat: BeatSpec) -> list[Problem]:
    """Return what only the merged pod settings show: mounts of missing volumes, two accounts of one name,
    and memory-backed volumes that leave a prefork child nothing."""
    problems: list[Problem] = []
    owners = [(f"pools[{i}].pod", p.pod) for i, p in enumerate(pools)] + [("beat.pod", beat.pod)]
    for field_name, override in owners:
        if override is not None and (override.volumes is not None or override.volume_mounts is not None):
            problems += settings.pod.merged(override).validate_references(field_name)
    for i, pool in enumerate(pools):
        memory = settings.pod.merged(pool.pod).memory_volume_bytes()
        if memory and memory >= parse_memory(pool.resources.limits.memory):
            problems.append(
                Problem(
                    f"pools[{i}].pod.volumes",
                    "memory-backed emptyDirs take the whole memory limit",
                    f"{memory // 1024**2}Mi",
                    f"less than {pool.resources.limits.memory}",
                )
            )
    accounts: dict[str, ServiceAccount] = {}
    for field_name, account in service_accounts(settings, pools, beat):
        name = account.resolved_name("celery")
        if account.create and name in accounts and accounts[name] != account:
            problems.append(
                Problem(
                    f"{field_name}.serviceAccount",
                    "creates a ServiceAccount named like another one",
                    shown(name),
                    "one definition per name",
                )
            )
        if account.create:
            accounts.setdefault(name, account)
    return problems


def service_accounts(
    settings: WorkloadSettings, pools: Sequence[PoolSpec], beat: BeatSpec
) -> list[tuple[str, ServiceAccount]]:
    """Return the resolved ServiceAccount settings of every pod, with where they come from."""
    found = [("pod", settings.pod.service_account)]
    found += [(f"pools[{i}].pod", settings.pod.merged(p.pod).service_account) for i, p in enumerate(pools)]
    if beat.enabled:
        found.append(("beat.pod", settings.pod.merged(beat.pod).service_account))
    return [(where, account) for where, account in found if account is not None]
