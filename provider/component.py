"""CeleryPlatform: the whole platform as one component that other Pulumi languages can use.

The components in ``components/`` take frozen dataclasses and other components as objects, which
the schema analyzer of ``pulumi.provider.experimental`` cannot describe. This module gives it
what it can: TypedDict arguments of plain types, each field documented, and a component that
turns them into those dataclasses and composes the real components.

No ``from __future__ import annotations`` here: the analyzer reads ``__init__``'s annotations
without evaluating them, so they must be real types, not strings.
"""

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

import pulumi

from celery_platform.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
from celery_platform.namespace import NamespaceArgs, PlatformNamespace
from celery_platform.redis import RedisBroker, RedisBrokerArgs
from celery_platform.secrets import PlatformSecrets, SecretsArgs
from celery_platform.validation import Problem, check_dns_label, raise_if_any
from celery_platform.workers import (
    CeleryWorkers,
    CeleryWorkersArgs,
    WorkloadSettings,
    platform_problems,
    validate_pools,
)
from celery_platform.workloads import BeatSpec, PodResources, PoolSpec, RedisSpec

PACKAGE = "celery-platform"
TYPE_TOKEN = f"{PACKAGE}:index:CeleryPlatform"


class ResourceQuantities(TypedDict):
    """A CPU and a memory quantity, such as a request or a limit."""

    cpu: str
    """CPU quantity, e.g. ``400m`` or ``2``."""
    memory: str
    """Memory quantity, e.g. ``512Mi`` or ``1Gi``."""


class ContainerResources(TypedDict):
    """Requests and limits of one container."""

    requests: ResourceQuantities
    """What the scheduler reserves and the quota counts."""
    limits: ResourceQuantities
    """The ceiling; memory beyond it is an OOM kill of the whole container."""


class WorkerPool(TypedDict):
    """One worker pool: a Deployment that consumes a list of queues."""

    name: str
    """Pool name (RFC 1123 label, at most 40 characters); the Deployment is ``<component>-<name>``."""
    queues: list[str]
    """Queues this pool consumes (``celery worker -Q``). Required: a pool with no queue does nothing."""
    replicas: NotRequired[int]
    """Pods. Default: ``1``."""
    concurrency: NotRequired[int]
    """Prefork children per pod, always passed explicitly (billiard would count the node's CPUs). Default: ``2``."""
    resources: NotRequired[ContainerResources]
    """Worker container resources. Default: ``100m``/``256Mi`` requests, ``200m``/``512Mi`` limits."""


class BeatSettings(TypedDict, total=False):
    """The single Celery beat (a StatefulSet of one, so that it never runs twice)."""

    enabled: bool
    """Run beat at all. Default: ``true``."""
    max_interval_seconds: int
    """Longest sleep of beat's loop (``--max-interval``), which bounds its heartbeat. Default: ``30``."""
    resources: ContainerResources
    """Beat container resources. Default: ``50m``/``128Mi`` requests, ``100m``/``256Mi`` limits."""


class RedisSettings(TypedDict, total=False):
    """The Redis broker (a StatefulSet of one with ``maxmemory-policy noeviction``)."""

    image: str
    """Redis image, pinned; also runs the workers' wait-for-broker init container. Default: ``redis:7.2.7``."""
    persistent: bool
    """Keep data on a PersistentVolumeClaim (append-only file); an emptyDir otherwise. Default: ``false``."""
    storage_size: str
    """PVC size when persistent. Default: ``1Gi``."""
    storage_class: str
    """PVC storage class; empty means the cluster default. Default: empty."""
    resources: ContainerResources
    """Redis resources (``maxmemory``: 80% of the limit). Default: ``100m``/``256Mi`` to ``200m``/``512Mi``."""


class LimitRatios(TypedDict, total=False):
    """maxLimitRequestRatio per resource: a limit may be at most this many times its request."""

    cpu: float
    """CPU limit/request bound, at least 1. Default: ``2``."""
    memory: float
    """Memory limit/request bound, at least 1. Default: ``2``."""


class LimitRangeSettings(TypedDict, total=False):
    """Per-container defaults and bounds of the namespace's LimitRange."""

    default_request: ResourceQuantities
    """Request given to a container that sets none. Default: ``100m`` / ``128Mi``."""
    default: ResourceQuantities
    """Limit given to a container that sets none. Default: ``200m`` / ``256Mi``."""
    min: ResourceQuantities
    """Smallest request allowed. Default: ``10m`` / ``16Mi``."""
    max: ResourceQuantities
    """Largest limit allowed. Default: ``4`` / ``8Gi``."""
    max_limit_request_ratio: LimitRatios
    """Largest limit/request ratio. Default: ``2`` for CPU and memory."""


class QuotaSettings(TypedDict, total=False):
    """The namespace's ResourceQuota: what every pod together may request and use."""

    requests_cpu: str
    """Sum of CPU requests. Default: ``4``."""
    requests_memory: str
    """Sum of memory requests. Default: ``8Gi``."""
    limits_cpu: str
    """Sum of CPU limits. Default: ``8``."""
    limits_memory: str
    """Sum of memory limits. Default: ``16Gi``."""
    pods: int
    """Number of pods. Default: ``40``."""
    persistent_volume_claims: int
    """Number of PersistentVolumeClaims. Default: ``4``."""
    requests_storage: str
    """Sum of PVC storage requests. Default: ``20Gi``."""


class CeleryPlatformArgs(TypedDict):
    """Arguments of CeleryPlatform. Plain values are validated, all at once, before anything is created."""

    namespace: str
    """Namespace of every object (an RFC 1123 label); created unless ``createNamespace`` is false. Required."""
    create_namespace: NotRequired[bool]
    """Create the namespace and its guardrails; false deploys into an existing namespace. Default: ``true``."""
    image: str
    """The app image (pinned tag or digest) that has Celery and the tasks. Required."""
    celery_app: str
    """The Celery app as ``celery -A`` takes it, e.g. ``proj`` or ``proj.celery:app``. Required."""
    pools: list[WorkerPool]
    """Worker pools, one Deployment each. Required."""
    database_url: pulumi.Input[str]
    """PostgreSQL URL for the app (``DATABASE_URL``); pass a secret. Required."""
    sentry_dsn: NotRequired[pulumi.Input[str]]
    """Sentry DSN ``https://KEY@HOST/PROJECT``; no ``SENTRY_DSN`` key when unset. Default: unset."""
    rotation: NotRequired[int]
    """Bump to regenerate every generated key at once. Default: ``0``."""
    beat: NotRequired[BeatSettings]
    """The single beat. Default: enabled, with its default resources."""
    redis: NotRequired[RedisSettings]
    """The Redis broker. Default: ``redis:7.2.7`` without persistence, with its default resources."""
    limit_range: NotRequired[LimitRangeSettings]
    """LimitRange to create (or, on an existing namespace, to check pods against). Default: its defaults; no check."""
    quota: NotRequired[QuotaSettings]
    """ResourceQuota to create and check the worst case against; unused on an existing namespace. Default: its own."""
    longest_task_seconds: NotRequired[int]
    """Longest task; sets terminationGracePeriodSeconds and the visibility timeout. Default: ``300``."""
    heartbeat_max_age_seconds: NotRequired[int]
    """Liveness: how stale a pod's heartbeat may be; covers a broker reconnect. Default: ``60``."""
    cluster_domain: NotRequired[str]
    """The cluster's DNS domain, for the broker host. Default: ``cluster.local``."""


def _given(value: Mapping[str, Any], convert: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """Return the fields present in ``value``, converted; an absent field keeps its dataclass default."""
    return {key: convert[key](item) for key, item in value.items() if key in convert}


def _resources(value: ResourceQuantities) -> Resources:
    return Resources(cpu=str(value["cpu"]), memory=str(value["memory"]))


def _pod_resources(value: ContainerResources) -> PodResources:
    return PodResources(requests=_resources(value["requests"]), limits=_resources(value["limits"]))


def _ratio(value: LimitRatios) -> Ratio:
    # The wire carries numbers as floats; str() keeps 1.5 as Decimal("1.5"), not its binary expansion.
    return Ratio(**_given(value, {"cpu": lambda v: Decimal(str(v)), "memory": lambda v: Decimal(str(v))}))


def _pool(value: WorkerPool) -> PoolSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        "name": str,
        "queues": tuple,
        "replicas": int,
        "concurrency": int,
        "resources": _pod_resources,
    }
    return PoolSpec(**_given(value, convert))


def _beat(value: BeatSettings) -> BeatSpec:
    return BeatSpec(**_given(value, {"enabled": bool, "max_interval_seconds": int, "resources": _pod_resources}))


def _redis(value: RedisSettings) -> RedisSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        "image": str,
        "persistent": bool,
        "storage_size": str,
        "storage_class": str,
        "resources": _pod_resources,
    }
    return RedisSpec(**_given(value, convert))


def _limit_range(value: LimitRangeSettings) -> LimitRangeSpec:
    convert: dict[str, Callable[[Any], Any]] = {k: _resources for k in ("default_request", "default", "min", "max")}
    return LimitRangeSpec(**_given(value, {**convert, "max_limit_request_ratio": _ratio}))


def _quota(value: QuotaSettings) -> QuotaSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        k: str for k in ("requests_cpu", "requests_memory", "limits_cpu", "limits_memory", "requests_storage")
    }
    return QuotaSpec(**_given(value, {**convert, "pods": int, "persistent_volume_claims": int}))


class CeleryPlatform(pulumi.ComponentResource):
    """A Celery platform: namespace guardrails, generated secrets, a Redis broker, worker pools and one beat."""

    # One-line docstrings throughout, here and in the TypedDicts: the analyzer copies them verbatim into
    # the schema, where the indentation of a continuation line would render as a code block in every SDK.

    namespace: pulumi.Output[str]
    """The namespace that holds every object."""
    secret_name: pulumi.Output[str]
    """The Secret: ``SECRET_KEY``, ``FIELD_ENCRYPTION_KEY``, ``REDIS_PASSWORD``, ``DATABASE_URL``, ``SENTRY_DSN``."""
    broker_host: pulumi.Output[str]
    """The Redis Service's cluster DNS name."""
    broker_port: pulumi.Output[int]
    """The Redis Service's port."""
    broker_url: pulumi.Output[str]
    """Secret: ``redis://:PASSWORD@host:6379/0``."""
    worker_deployments: pulumi.Output[dict[str, str]]
    """Pool name to Deployment name."""

    def __init__(self, name: str, args: CeleryPlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        create_namespace = bool(args.get("create_namespace", True))
        # On an existing namespace, its LimitRange is someone else's: check against it only when described.
        described = "limit_range" in args
        limit_range = _limit_range(args.get("limit_range") or {}) if create_namespace or described else None
        quota = _quota(args.get("quota") or {})
        redis = _redis(args.get("redis") or {})
        beat = _beat(args.get("beat") or {})
        pools = [_pool(p) for p in args["pools"]]
        settings = WorkloadSettings(
            image=args["image"],
            app=args["celery_app"],
            redis_image=redis.image,
            **_given(args, {"longest_task_seconds": int, "heartbeat_max_age_seconds": int}),
        )
        secrets_args = SecretsArgs(
            namespace=args["namespace"],
            # Plain values are checked here; PlatformSecrets makes every value a secret Output.
            database_url=args["database_url"],
            sentry_dsn=args.get("sentry_dsn"),
            rotation=int(args.get("rotation", 0)),
        )
        # Validate everything the components would, before registering anything: one error, every problem.
        problems = _problems(args["namespace"], limit_range, quota if create_namespace else None, redis)
        problems += secrets_args.validate() + settings.validate() + validate_pools(pools) + beat.validate("beat")
        if not problems and limit_range is not None:
            problems += platform_problems(
                settings, redis, pools, beat, limit_range, quota if create_namespace else None
            )
        raise_if_any(f"CeleryPlatform {name!r}", problems)
        super().__init__(TYPE_TOKEN, name, None, opts)

        child = pulumi.ResourceOptions(parent=self)
        in_namespace = child
        if create_namespace and limit_range is not None:
            guarded = PlatformNamespace(
                name, NamespaceArgs(name=args["namespace"], limit_range=limit_range, quota=quota), opts=child
            )
            self.namespace = guarded.name
            in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[guarded])
        else:
            self.namespace = pulumi.Output.from_input(args["namespace"])
        secrets = PlatformSecrets(
            f"{name}-secrets",
            SecretsArgs(
                namespace=self.namespace,
                database_url=secrets_args.database_url,
                sentry_dsn=secrets_args.sentry_dsn,
                rotation=secrets_args.rotation,
            ),
            opts=in_namespace,
        )
        broker = RedisBroker(
            f"{name}-redis",
            RedisBrokerArgs(
                namespace=self.namespace,
                secrets=secrets,
                spec=redis,
                cluster_domain=args.get("cluster_domain", "cluster.local"),
                limit_range=limit_range,
            ),
            opts=in_namespace,
        )
        workers = CeleryWorkers(
            name,
            CeleryWorkersArgs(
                namespace=self.namespace,
                secrets=secrets,
                broker=broker,
                settings=settings,
                pools=pools,
                beat=beat,
                limit_range=limit_range,
            ),
            opts=in_namespace,
        )
        self.secret_name = secrets.secret_name
        self.broker_host = broker.host
        self.broker_port = pulumi.Output.from_input(broker.port)
        self.broker_url = broker.url
        names = {pool: deployment.metadata.name for pool, deployment in workers.deployments.items()}
        self.worker_deployments = pulumi.Output.all(**names) if names else pulumi.Output.from_input({})
        self.register_outputs(
            {
                "namespace": self.namespace,
                "secret_name": self.secret_name,
                "broker_host": self.broker_host,
                "broker_port": self.broker_port,
                "broker_url": self.broker_url,
                "worker_deployments": self.worker_deployments,
            }
        )


def _problems(
    namespace: str, limit_range: LimitRangeSpec | None, quota: QuotaSpec | None, redis: RedisSpec
) -> list[Problem]:
    """Return the problems of the namespace, its guardrails and the broker, named as in the schema."""
    problems = check_dns_label("namespace", namespace)
    if limit_range is not None:
        problems += limit_range.validate("limitRange")
    if quota is not None:
        problems += quota.validate("quota")
    return problems + redis.validate("redis")


COMPONENTS: list[type[pulumi.ComponentResource]] = [CeleryPlatform]
"""What the provider hosts; ``provider/__main__.py`` and the schema tests share this list."""
