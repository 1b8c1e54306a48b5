"""CeleryWorkers: one Deployment per worker pool, a single beat, and the hooks ConfigMap they load."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform import probes
from celery_platform.admission import PodPlan, check_limit_range, check_quota
from celery_platform.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.labels import selector_labels, standard_labels
from celery_platform.redis import RedisBroker, redis_plan
from celery_platform.secrets import PlatformSecrets
from celery_platform.statefulset import stateful_set_of_one
from celery_platform.validation import Problem, check_count, check_image_pinned, raise_if_any, shown, untyped
from celery_platform.workloads import (
    BeatSpec,
    PodResources,
    PoolSpec,
    RedisSpec,
    Refs,
    beat_container,
    build_pod_spec,
    celery_volumes,
    grace_period_seconds,
    memory_warning,
    pod_resources,
    wait_for_broker,
    worker_container,
)

ROLLOUT_SURGE = 1


@dataclass(frozen=True, kw_only=True)
class WorkloadSettings:
    """What every Celery pod of a platform shares: image, app, timing and the broker wait."""

    image: str
    """The app image (pinned tag or digest) that has Celery and the tasks. Required."""
    app: str
    """The Celery app as ``celery -A`` takes it, e.g. ``proj`` or ``proj.celery:app``. Required."""
    redis_image: str = "redis:7.2.7"
    """Image of the wait-for-broker init container (it needs sh and redis-cli). Default: ``"redis:7.2.7"``."""
    longest_task_seconds: int = 300
    """Longest task; sets terminationGracePeriodSeconds and the visibility timeout. Default: ``300``."""
    heartbeat_max_age_seconds: int = 60
    """Liveness: how stale the heartbeat may be; covers a broker reconnect. Default: ``60``."""
    run_as_user: int = 10001
    """Non-root UID (and GID, fsGroup) of Celery pods. Default: ``10001``."""
    init_resources: PodResources = field(default_factory=lambda: pod_resources("10m", "16Mi", "20m", "32Mi"))
    """Resources of the wait-for-broker init container (LimitRange applies to it too).
    Default: ``10m``/``16Mi`` requests, ``20m``/``32Mi`` limits."""

    def validate(self) -> list[Problem]:
        """Return every problem of the shared settings."""
        problems = check_image_pinned("image", self.image)
        if not self.app.strip():
            problems.append(Problem("celeryApp", "is empty", shown(self.app), "the app as `celery -A` takes it"))
        problems += check_count("longestTaskSeconds", self.longest_task_seconds, 1)
        problems += check_count("heartbeatMaxAgeSeconds", self.heartbeat_max_age_seconds, 10)
        problems += check_count("runAsUser", self.run_as_user, 1)
        problems += self.init_resources.validate("initResources")
        return problems


def celery_pod_spec(
    settings: WorkloadSettings,
    refs: Refs,
    container: dict[str, Any],
    grace_seconds: int,
    spread_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return a Celery pod spec: the broker wait, the writable /tmp and the hooks around one container."""
    return build_pod_spec(
        container=container,
        init_containers=[wait_for_broker(settings.redis_image, refs, settings.init_resources)],
        volumes=celery_volumes(refs),
        run_as_user=settings.run_as_user,
        grace_seconds=grace_seconds,
        spread_labels=spread_labels,
    )


def worker_pod_spec(settings: WorkloadSettings, pool: PoolSpec, refs: Refs, instance: str) -> dict[str, Any]:
    """Return a pool's pod spec (the same function feeds admission and the Deployment)."""
    container = worker_container(
        image=settings.image,
        app=settings.app,
        pool=pool,
        refs=refs,
        longest_task_seconds=settings.longest_task_seconds,
        heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
    )
    grace = grace_period_seconds(settings.longest_task_seconds)
    return celery_pod_spec(settings, refs, container, grace, selector_labels("celery-worker", instance))


def beat_pod_spec(settings: WorkloadSettings, beat: BeatSpec, refs: Refs) -> dict[str, Any]:
    """Return beat's pod spec; beat runs no task, so a short grace period suffices."""
    container = beat_container(
        image=settings.image,
        app=settings.app,
        beat=beat,
        refs=refs,
        longest_task_seconds=settings.longest_task_seconds,
        heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
    )
    return celery_pod_spec(settings, refs, container, grace_seconds=30)


# Stand-in names for admission planning: only resources matter there, never what a ref points to.
PLAN_REFS = Refs(
    secret_name="secrets", secret_keys=(), broker_secret_name="broker", broker_host="redis", hooks_config_map="hooks"
)


def celery_plans(settings: WorkloadSettings, pools: Sequence[PoolSpec], beat: BeatSpec) -> list[PodPlan]:
    """Return the pools' and beat's pods as admission sees them (worst case: surge on every pool)."""
    plans = [
        PodPlan(
            owner=f"pools[{p.name}]",
            replicas=p.replicas,
            surge=ROLLOUT_SURGE if p.replicas else 0,
            pod_spec=worker_pod_spec(settings, p, PLAN_REFS, p.name),
        )
        for p in pools
    ]
    if beat.enabled:
        plans.append(PodPlan(owner="beat", replicas=1, surge=0, pod_spec=beat_pod_spec(settings, beat, PLAN_REFS)))
    return plans


def platform_problems(
    settings: WorkloadSettings,
    redis: RedisSpec,
    pools: Sequence[PoolSpec],
    beat: BeatSpec,
    limit_range: LimitRangeSpec,
    quota: QuotaSpec | None,
) -> list[Problem]:
    """Check every pod of a platform (broker, pools, beat) against the LimitRange, the worst case
    against the quota when there is one: what the API server would refuse, found at preview."""
    plans = [redis_plan(redis), *celery_plans(settings, pools, beat)]
    problems = [p for plan in plans for p in check_limit_range(plan, limit_range)]
    if quota is not None:
        problems += check_quota(plans, quota, limit_range)
    return problems


def validate_pools(pools: Sequence[PoolSpec]) -> list[Problem]:
    """Return every problem of the pools, including a name used twice."""
    problems = [p for i, pool in enumerate(pools) for p in pool.validate(f"pools[{i}]")]
    counts = Counter(pool.name for pool in pools)
    for name in sorted(n for n, count in counts.items() if count > 1):
        problems.append(Problem("pools", "a pool name is used twice", repr(name), "unique pool names"))
    return problems


@dataclass(frozen=True, kw_only=True)
class CeleryWorkersArgs:
    """Arguments of CeleryWorkers."""

    namespace: pulumi.Input[str]
    """Namespace of every object. Required."""
    secrets: PlatformSecrets
    """The platform Secret the pods read keys from. Required."""
    broker: RedisBroker
    """The broker; its Service gives the host and its Secret the URL. Required."""
    settings: WorkloadSettings
    """Image, app and timing shared by every pod. Required."""
    pools: Sequence[PoolSpec]
    """Worker pools, one Deployment each. Required."""
    beat: BeatSpec = field(default_factory=BeatSpec)
    """The single beat. Default: ``BeatSpec()``."""
    limit_range: LimitRangeSpec | None = None
    """Check every pod against this LimitRange before registering anything. Default: no check."""


class CeleryWorkers(pulumi.ComponentResource):
    """Worker pools (a Deployment, a PodDisruptionBudget each) and one beat (a StatefulSet of one).

    Beat is a StatefulSet of one, never a Deployment: a RollingUpdate Deployment briefly runs two
    beats, which sends every periodic task twice, and even Recreate replaces a pod on an
    unreachable node at once, while a StatefulSet waits until the old pod is known to be gone.
    """

    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(self, resource_name: str, args: CeleryWorkersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.settings.validate() + validate_pools(args.pools) + args.beat.validate("beat")
        if not problems and args.limit_range is not None:
            for plan in celery_plans(args.settings, args.pools, args.beat):
                problems += check_limit_range(plan, args.limit_range)
        raise_if_any(f"CeleryWorkers {resource_name!r}", problems)
        super().__init__("celery-platform:index:CeleryWorkers", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for i, pool in enumerate(args.pools):
            warning = memory_warning(f"pools[{i}]", pool)
            if warning:
                pulumi.log.warn(warning, resource=self)

        self.hooks = k8s.core.v1.ConfigMap(
            f"{resource_name}-hooks",
            metadata={
                "namespace": args.namespace,
                "labels": standard_labels("celery-platform", resource_name, "hooks"),
            },
            data={probes.HOOKS_FILENAME: probes.hooks_source()},
            immutable=True,
            opts=child,
        )
        refs = Refs(
            secret_name=args.secrets.secret_name,
            secret_keys=args.secrets.keys,
            broker_secret_name=args.broker.url_secret_name,
            broker_host=args.broker.host,
            hooks_config_map=self.hooks.metadata.name,
        )
        self.deployments = {}
        for pool in args.pools:
            self.deployments[pool.name] = self._pool(resource_name, args, pool, refs, child)
        self.beat = self._beat(resource_name, args, refs, child) if args.beat.enabled else None
        self.register_outputs({"pools": sorted(self.deployments)})

    def _pool(
        self, resource_name: str, args: CeleryWorkersArgs, pool: PoolSpec, refs: Refs, child: pulumi.ResourceOptions
    ) -> k8s.apps.v1.Deployment:
        name = f"{resource_name}-{pool.name}"
        labels = standard_labels("celery-worker", name, "worker")
        selector = selector_labels("celery-worker", name)
        meta: Any = {"name": name, "namespace": args.namespace, "labels": labels}
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec=untyped(
                {
                    "replicas": pool.replicas,
                    "selector": {"matchLabels": selector},
                    # maxUnavailable 0: a rollout never drops capacity; the new pod must be ready first.
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": ROLLOUT_SURGE},
                    },
                    "revisionHistoryLimit": 5,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": worker_pod_spec(args.settings, pool, refs, name),
                    },
                }
            ),
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": f"{name}-pdb", "namespace": args.namespace, "labels": labels},
            # maxUnavailable 1, not minAvailable: a one-replica pool must not block node drains forever.
            spec=untyped({"maxUnavailable": 1, "selector": {"matchLabels": selector}}),
            opts=child,
        )
        return deployment

    def _beat(
        self, resource_name: str, args: CeleryWorkersArgs, refs: Refs, child: pulumi.ResourceOptions
    ) -> k8s.apps.v1.StatefulSet:
        name = f"{resource_name}-beat"
        labels = standard_labels("celery-beat", resource_name, "beat")
        selector = selector_labels("celery-beat", resource_name)
        return stateful_set_of_one(
            name,
            namespace=args.namespace,
            labels=labels,
            selector=selector,
            pod_spec=beat_pod_spec(args.settings, args.beat, refs),
            opts=child,
        )
