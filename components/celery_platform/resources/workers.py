"""CeleryWorkers: one Deployment per worker pool, a single beat, and the hooks ConfigMap they load."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.build import probes
from celery_platform.build.admission import PodPlan, check_limit_range, check_quota, unique
from celery_platform.build.labels import selector_labels, standard_labels
from celery_platform.build.quantities import parse_memory
from celery_platform.build.workloads import (
    MAX_LONGEST_TASK_SECONDS,
    Refs,
    beat_container,
    build_pod_spec,
    celery_volumes,
    grace_period_seconds,
    wait_for_broker,
    worker_container,
)
from celery_platform.config.autoscaling import API_VERSION as KEDA_API_VERSION
from celery_platform.config.autoscaling import (
    autoscaling_problems,
    is_autoscaled,
    name_problems,
    scaled_object_spec,
    trigger_authentication_spec,
    worst_case_replicas,
)
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.podsettings import PodSettings, ServiceAccount, apply_to_pod
from celery_platform.config.specs import BeatSpec, PodResources, PoolSpec, RedisSpec, memory_warning, pod_resources
from celery_platform.config.validation import (
    Problem,
    check_count,
    check_image_pinned,
    raise_if_any,
    shown,
    untyped,
    validated_by_parent,
)
from celery_platform.resources._statefulset import pod_metadata, rollout_options, stateful_set_of_one
from celery_platform.resources.broker import Broker, BrokerTLS
from celery_platform.resources.redis import redis_plan
from celery_platform.resources.secrets import PlatformSecrets

ROLLOUT_SURGE = 1
# What `celery -A` imports: a dotted module path, optionally `:attribute` (also dotted).
CELERY_APP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::[A-Za-z_][A-Za-z0-9_.]*)?")


def check_celery_app(field: str, app: str) -> list[Problem]:
    """Return a problem unless ``app`` is what ``celery -A`` imports."""
    if CELERY_APP.fullmatch(app):
        return []
    return [
        Problem(
            field,
            "not a Celery app name",
            shown(app),
            "the app as `celery -A` takes it: a dotted module path, optionally ':attribute'",
        )
    ]


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
    rollout_timeout_seconds: int = 600
    """How long ``pulumi up`` waits for a pool or beat to become ready before it fails, naming the
    workload and why (a pod that fits no node, a crash loop). Default: ``600``, the provider's own."""
    pod: PodSettings = field(default_factory=PodSettings)
    """Pod settings of every Celery pod (identity, pull secrets, placement, extra env and volumes);
    a pool or beat may override each field. Default: ``PodSettings()``, none of them."""

    def validate(self) -> list[Problem]:
        """Return every problem of the shared settings."""
        problems = check_image_pinned("image", self.image) + check_celery_app("celeryApp", self.app)
        problems += check_count("longestTaskSeconds", self.longest_task_seconds, 1, MAX_LONGEST_TASK_SECONDS)
        problems += check_count("heartbeatMaxAgeSeconds", self.heartbeat_max_age_seconds, 10)
        problems += check_count("runAsUser", self.run_as_user, 1)
        problems += check_count("rolloutTimeoutSeconds", self.rollout_timeout_seconds, 30)
        problems += self.init_resources.validate("initResources")
        problems += self.pod.validate("pod") + self.pod.validate_references("pod")
        return problems


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
    )
    grace = grace_period_seconds(settings.longest_task_seconds)
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
    redis: RedisSpec | None,
    pools: Sequence[PoolSpec],
    beat: BeatSpec,
    limit_range: LimitRangeSpec,
    quota: QuotaSpec | None,
    tls: BrokerTLS | None = None,
    extra_plans: Sequence[PodPlan] = (),
) -> list[Problem]:
    """Check every pod of a platform (our broker unless external, pools, beat, and ``extra_plans`` such as
    the metrics exporter) against the LimitRange, the worst case against the quota when there is one:
    what the API server would refuse, found at preview."""
    own_broker = [redis_plan(redis, settings.pod)] if redis is not None else []
    plans = [*own_broker, *celery_plans(settings, pools, beat, tls), *extra_plans]
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


@dataclass(frozen=True, kw_only=True)
class CeleryWorkersArgs:
    """Arguments of CeleryWorkers."""

    namespace: pulumi.Input[str]
    """Namespace of every object. Required."""
    secrets: PlatformSecrets
    """The platform Secret the pods read keys from. Required."""
    broker: Broker
    """The broker: a RedisBroker or an ExternalBroker (host, port, URL Secret, TLS). Required."""
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
        checked = validated_by_parent(opts)
        problems = [] if checked else args.settings.validate() + validate_pools(args.pools) + args.beat.validate("beat")
        if not problems and not checked:
            problems += pod_problems(args.settings, args.pools, args.beat)
            problems += autoscaling_problems(args.pools, args.broker.auth) + name_problems(resource_name, args.pools)
        if not problems and not checked and args.limit_range is not None:
            for plan in celery_plans(args.settings, args.pools, args.beat, args.broker.tls):
                problems += check_limit_range(plan, args.limit_range)
        raise_if_any(f"CeleryWorkers {resource_name!r}", unique(problems))
        super().__init__("celery-platform:index:CeleryWorkers", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for i, pool in enumerate(args.pools):
            warning = memory_warning(f"pools[{i}]", pool, args.settings.pod.merged(pool.pod).memory_volume_bytes())
            if warning:
                pulumi.log.warn(warning, resource=self)
        self.service_accounts: dict[str, k8s.core.v1.ServiceAccount] = {}
        for _, account in service_accounts(args.settings, args.pools, args.beat):
            name = account.resolved_name(resource_name)
            if account.create and name not in self.service_accounts:
                self.service_accounts[name] = k8s.core.v1.ServiceAccount(
                    f"{resource_name}-sa-{name}",
                    metadata={
                        "name": name,
                        "namespace": args.namespace,
                        "labels": standard_labels("celery-platform", resource_name, "identity"),
                        "annotations": dict(account.annotations),
                    },
                    # The pods say whether they mount the token; the account never does by default.
                    automount_service_account_token=account.automount_token,
                    opts=child,
                )

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
            broker_secret_key=args.broker.url_secret_key,
            broker_host=args.broker.host,
            broker_port=args.broker.port,
            broker_tls=args.broker.tls,
            hooks_config_map=self.hooks.metadata.name,
        )
        self.trigger_authentication: k8s.apiextensions.CustomResource | None = None
        self._auth_name = f"{resource_name}-broker-auth"
        if any(is_autoscaled(p) for p in args.pools):
            # One for every scaled pool: the broker's password (and CA) from Secrets, never a literal.
            self.trigger_authentication = k8s.apiextensions.CustomResource(
                self._auth_name,
                api_version=KEDA_API_VERSION,
                kind="TriggerAuthentication",
                metadata={
                    "name": self._auth_name,
                    "namespace": args.namespace,
                    "labels": standard_labels("celery-platform", resource_name, "autoscaling"),
                },
                spec=trigger_authentication_spec(args.broker.auth),
                opts=child,
            )
        self.deployments = {}
        self.scaled_objects: dict[str, k8s.apiextensions.CustomResource] = {}
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
        pod = args.settings.pod.merged(pool.pod)
        # An autoscaled pool's replicas belong to KEDA's HPA: a value of ours would be a field-manager
        # conflict on every `pulumi up` (pulumi-kubernetes #2491), or would undo each scaling.
        replicas = {} if is_autoscaled(pool) else {"replicas": pool.replicas}
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec=untyped(
                {
                    **replicas,
                    "selector": {"matchLabels": selector},
                    # maxUnavailable 0: a rollout never drops capacity; the new pod must be ready first.
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": ROLLOUT_SURGE},
                    },
                    "revisionHistoryLimit": 5,
                    "template": {
                        "metadata": pod_metadata(labels, pod.labels, pod.annotations),
                        "spec": worker_pod_spec(args.settings, pool, refs, name, resource_name),
                    },
                }
            ),
            opts=rollout_options(child, args.settings.rollout_timeout_seconds),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": f"{name}-pdb", "namespace": args.namespace, "labels": labels},
            # maxUnavailable 1, not minAvailable: a one-replica pool must not block node drains forever,
            # and it stays valid for an autoscaled pool at zero.
            spec=untyped({"maxUnavailable": 1, "selector": {"matchLabels": selector}}),
            opts=child,
        )
        if is_autoscaled(pool):
            assert self.trigger_authentication is not None
            self.scaled_objects[pool.name] = k8s.apiextensions.CustomResource(
                f"{name}-scaler",
                api_version=KEDA_API_VERSION,
                kind="ScaledObject",
                metadata={"name": name, "namespace": args.namespace, "labels": labels},
                spec=scaled_object_spec(
                    name,
                    pool,
                    address=pulumi.Output.concat(pulumi.Output.from_input(args.broker.host), f":{args.broker.port}"),
                    database=args.broker.database,
                    tls=args.broker.tls is not None,
                    auth_name=self._auth_name,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, self.trigger_authentication]),
            )
        return deployment

    def _beat(
        self, resource_name: str, args: CeleryWorkersArgs, refs: Refs, child: pulumi.ResourceOptions
    ) -> k8s.apps.v1.StatefulSet:
        name = f"{resource_name}-beat"
        labels = standard_labels("celery-beat", resource_name, "beat")
        selector = selector_labels("celery-beat", resource_name)
        pod = args.settings.pod.merged(args.beat.pod)
        spec = beat_pod_spec(args.settings, args.beat, refs, resource_name)
        return stateful_set_of_one(
            name,
            namespace=args.namespace,
            labels=labels,
            selector=selector,
            pod_spec=spec,
            pod_labels=pod.labels,
            pod_annotations=pod.annotations,
            opts=rollout_options(child, args.settings.rollout_timeout_seconds),
        )
