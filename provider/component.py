"""CeleryPlatform: the whole platform as one component that other Pulumi languages can use.

The components in ``components/`` take frozen dataclasses and other components as objects, which
the schema analyzer of ``pulumi.provider.experimental`` cannot describe. This module gives it
what it can: TypedDict arguments of plain types, each field documented, and a component that
turns them into those dataclasses and composes the real components.

No ``from __future__ import annotations`` here: the analyzer reads ``__init__``'s annotations
without evaluating them, so they must be real types, not strings.
"""

import dataclasses
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

import pulumi

from celery_platform.config.autoscaling import AutoscalingSpec, KedaOperator, is_autoscaled
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
from celery_platform.config.podsettings import (
    EmptyDir,
    EnvFrom,
    EnvVar,
    KeyRef,
    PodSettings,
    ServiceAccount,
    SpreadConstraint,
    Toleration,
    Volume,
    VolumeMount,
)
from celery_platform.config.specs import BeatSpec, PodResources, PoolSpec, RedisSpec
from celery_platform.config.validation import Problem, check_dns_label, raise_if_any
from celery_platform.resources.broker import ExternalBroker, ExternalBrokerArgs, ExternalBrokerSpec
from celery_platform.resources.namespace import EgressRule, NamespaceArgs, PlatformNamespace, database_egress
from celery_platform.resources.redis import RedisBroker, RedisBrokerArgs
from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
from celery_platform.resources.workers import (
    CeleryWorkers,
    CeleryWorkersArgs,
    WorkloadSettings,
    platform_problems,
    pod_problems,
    validate_pools,
)

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


class ObjectKey(TypedDict):
    """One key of an existing Secret or ConfigMap."""

    name: str
    """The Secret's or ConfigMap's name."""
    key: str
    """The key inside it."""
    optional: NotRequired[bool]
    """Start the pod even when it is missing. Default: ``false``."""


class EnvVarSettings(TypedDict):
    """One extra env var: a value, or a key of an existing Secret or ConfigMap."""

    name: str
    """Its name; one the platform sets (CELERY_BROKER_URL, SECRET_KEY, ...) is refused."""
    value: NotRequired[str]
    """A literal value; refused for a secret-looking name. Default: unset."""
    secret_key_ref: NotRequired[ObjectKey]
    """Read it from an existing Secret. Default: unset."""
    config_map_key_ref: NotRequired[ObjectKey]
    """Read it from an existing ConfigMap. Default: unset."""


class EnvFromSettings(TypedDict, total=False):
    """Every key of an existing Secret or ConfigMap as env vars (the platform's own vars take precedence)."""

    secret: str
    """The Secret's name. Default: unset."""
    config_map: str
    """The ConfigMap's name. Default: unset."""
    prefix: str
    """Prepended to every key. Default: empty."""


class TolerationSettings(TypedDict, total=False):
    """A toleration of a node taint."""

    key: str
    """The taint's key. Default: empty (every key, with Exists)."""
    operator: str
    """Equal or Exists. Default: ``Equal``."""
    value: str
    """The taint's value, with Equal. Default: empty."""
    effect: str
    """NoSchedule, PreferNoSchedule or NoExecute. Default: empty (all)."""
    toleration_seconds: int
    """How long a NoExecute taint is tolerated. Default: forever."""


class SpreadSettings(TypedDict):
    """A topology spread constraint over the pool's own pods."""

    topology_key: str
    """The node label to spread over."""
    max_skew: NotRequired[int]
    """Largest difference of pods between two domains. Default: ``1``."""
    when_unsatisfiable: NotRequired[str]
    """ScheduleAnyway or DoNotSchedule. Default: ``ScheduleAnyway``."""


class VolumeSettings(TypedDict):
    """An extra volume: an existing Secret, ConfigMap or PVC, or an emptyDir."""

    name: str
    """Volume name, referenced by volumeMounts."""
    secret: NotRequired[str]
    """An existing Secret. Default: unset."""
    config_map: NotRequired[str]
    """An existing ConfigMap. Default: unset."""
    persistent_volume_claim: NotRequired[str]
    """An existing PersistentVolumeClaim. Default: unset."""
    empty_dir_size_limit: NotRequired[str]
    """An emptyDir of this size. Default: unset."""
    empty_dir_medium: NotRequired[str]
    """The emptyDir's medium, empty or Memory. Default: empty (node disk)."""


class VolumeMountSettings(TypedDict):
    """Where an extra volume appears in the Celery container."""

    name: str
    """The volume's name."""
    mount_path: str
    """An absolute path, neither over nor under /tmp or the hooks directory."""
    read_only: NotRequired[bool]
    """Mount read-only. Default: ``true``."""
    sub_path: NotRequired[str]
    """Only this path inside the volume. Default: all of it."""


class ServiceAccountSettings(TypedDict, total=False):
    """The pods' identity: one created with annotations (the cloud IAM binding), or an existing one."""

    name: str
    """Its name. Default: the component's name when created, else the namespace's default account."""
    create: bool
    """Create it. Default: ``false``."""
    annotations: dict[str, str]
    """Annotations of the created account, e.g. eks.amazonaws.com/role-arn. Default: none."""
    automount_token: bool
    """Mount the API token into the pods. Default: ``false``."""


class PodOptions(TypedDict, total=False):
    """Settings of Celery pods; on a pool or beat, each field set replaces the platform's."""

    service_account: ServiceAccountSettings
    """Identity and token. Default: the namespace's default account, no token."""
    image_pull_secrets: list[str]
    """Existing registry Secrets. Default: none."""
    node_selector: dict[str, str]
    """Node labels the pods require. Default: none."""
    tolerations: list[TolerationSettings]
    """Taints the pods tolerate. Default: none."""
    affinity_json: str
    """Kubernetes affinity (nodeAffinity, podAffinity, podAntiAffinity) as JSON. Default: none."""
    priority_class_name: str
    """An existing PriorityClass. Default: none."""
    topology_spread: list[SpreadSettings]
    """Spread constraints; an empty list turns spreading off. Default: hostname and zone, ScheduleAnyway."""
    annotations: dict[str, str]
    """Pod annotations. Default: none."""
    labels: dict[str, str]
    """Extra pod labels; the platform's app.kubernetes.io labels cannot be overridden. Default: none."""
    env: list[EnvVarSettings]
    """Extra env vars of the Celery container. Default: none."""
    env_from: list[EnvFromSettings]
    """Whole Secrets or ConfigMaps as env vars. Default: none."""
    volumes: list[VolumeSettings]
    """Extra volumes. Default: none."""
    volume_mounts: list[VolumeMountSettings]
    """Mounts of the extra volumes. Default: none."""
    python_path: list[str]
    """The image's own PYTHONPATH entries; the hooks directory is added after them. Default: none."""


class EgressRuleSettings(TypedDict):
    """Addresses outside the namespace that the pods may reach."""

    cidr: str
    """An IPv4 or IPv6 CIDR."""
    ports: NotRequired[list[int]]
    """TCP ports. Default: every port."""


class ExternalBrokerSettings(TypedDict, total=False):
    """A Redis the platform does not run (ElastiCache, Memorystore, Azure Cache, an operator's)."""

    url_secret: ObjectKey
    """The existing Secret and key holding the URL. Default: unset (give brokerUrl)."""
    host: str
    """The broker's host; required when the URL is in a Secret or an output. Default: from a plain brokerUrl."""
    port: int
    """The broker's port. Default: the URL's, else ``6379``."""
    tls: bool
    """Connect with TLS (rediss://). Default: from the URL's scheme, else ``false``."""
    ca_secret: ObjectKey
    """With TLS, the CA in an existing Secret. Default: the image's trusted CAs."""
    ca_config_map: ObjectKey
    """With TLS, the CA in an existing ConfigMap. Default: the image's trusted CAs."""
    cidr: str
    """Addresses the egress policy admits on the broker port. Default: the host's /32 when it is an IP."""
    database: int
    """The Redis database index. Default: the URL's, else ``0``."""
    password_secret: ObjectKey
    """With urlSecret: the password's Secret key, for autoscaled pools (KEDA takes no URL). Default: unset."""
    username_secret: ObjectKey
    """With urlSecret: the Secret key of an ACL user name, for KEDA. Default: the default user."""


class PoolAutoscaling(TypedDict):
    """Scale a pool on the backlog of its queues with KEDA (which must be installed in the cluster)."""

    max_replicas: int
    """Most pods; admission is checked at this count plus rollout surge. Required."""
    min_replicas: NotRequired[int]
    """Fewest pods; ``0`` stops the pool while its queues are empty. Default: ``0``."""
    backlog_per_replica: NotRequired[int]
    """Waiting tasks per pod that KEDA aims for. Default: the pool's concurrency."""
    polling_interval_seconds: NotRequired[int]
    """How often KEDA reads the backlog. Default: ``15``."""
    cooldown_seconds: NotRequired[int]
    """How long the backlog must stay low before a scale-down. Default: ``300``."""
    priority_steps: NotRequired[list[int]]
    """The app's Redis priority_steps: one list per step per queue. Default: kombu's ``[0, 3, 6, 9]``."""


class KedaOperatorSettings(TypedDict, total=False):
    """Where the KEDA operator runs; our Redis admits its backlog polls when a pool autoscales."""

    namespace: str
    """The operator's namespace. Default: ``keda``."""
    pod_labels: dict[str, str]
    """Labels of the operator's pods. Default: ``{"app.kubernetes.io/name": "keda-operator"}``."""


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
    log_level: NotRequired[str]
    """``--loglevel``: DEBUG, INFO, WARNING, ERROR or CRITICAL. Default: ``INFO``."""
    pool_type: NotRequired[str]
    """prefork, threads, solo, gevent or eventlet; max-memory-per-child only with prefork. Default: ``prefork``."""
    extra_args: NotRequired[list[str]]
    """More celery worker options; those the platform sets (-Q, -c, -n, --include, ...) are refused. Default: none."""
    pod: NotRequired[PodOptions]
    """This pool's pod settings; each field set replaces the platform's. Default: the platform's."""
    autoscaling: NotRequired[PoolAutoscaling]
    """Scale on the queues' backlog with KEDA; leave ``replicas`` out then. Default: ``replicas`` pods."""


class BeatSettings(TypedDict, total=False):
    """The single Celery beat (a StatefulSet of one, so that it never runs twice)."""

    enabled: bool
    """Run beat at all. Default: ``true``."""
    max_interval_seconds: int
    """Longest sleep of beat's loop (``--max-interval``), which bounds its heartbeat. Default: ``30``."""
    resources: ContainerResources
    """Beat container resources. Default: ``50m``/``128Mi`` requests, ``100m``/``256Mi`` limits."""
    log_level: str
    """``--loglevel``: DEBUG, INFO, WARNING, ERROR or CRITICAL. Default: ``INFO``."""
    pod: PodOptions
    """Beat's pod settings; each field set replaces the platform's. Default: the platform's."""


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
    keda_operator: NotRequired[KedaOperatorSettings]
    """Where the KEDA operator runs, for pools with autoscaling. Default: namespace ``keda``."""
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
    pod_security_level: NotRequired[str]
    """Pod Security level of a created namespace: privileged, baseline or restricted. Default: ``restricted``."""
    egress_cidrs: NotRequired[list[str]]
    """CIDRs the pods may reach on any port besides DNS; 0.0.0.0/0 only when asked for. Default: none."""
    egress_rules: NotRequired[list[EgressRuleSettings]]
    """CIDRs and ports the pods may reach (a database named by IP is added by itself). Default: none."""
    django_secret_key: NotRequired[pulumi.Input[str]]
    """Replaces the generated Django SECRET_KEY; pass a secret. Default: generated."""
    field_encryption_key: NotRequired[pulumi.Input[str]]
    """Replaces the generated Fernet FIELD_ENCRYPTION_KEY; pass a secret. Default: generated."""
    redis_password: NotRequired[pulumi.Input[str]]
    """Replaces the generated Redis password; pass a secret. Default: generated."""
    run_as_user: NotRequired[int]
    """Non-root UID (and GID, fsGroup) of the Celery pods. Default: ``10001``."""
    pod: NotRequired[PodOptions]
    """Settings of every Celery pod (identity, pull secrets, placement, env, volumes). Default: none of them."""
    external_broker: NotRequired[ExternalBrokerSettings]
    """Use this Redis instead of running one. Default: unset (the platform runs its own Redis)."""
    broker_url: NotRequired[pulumi.Input[str]]
    """The external broker's URL redis[s]://:PASSWORD@HOST:PORT/DB; pass a secret. Default: unset."""


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


def _key(value: Mapping[str, Any]) -> KeyRef:
    return KeyRef(**_given(value, {"name": str, "key": str, "optional": bool}))


def _env(value: Mapping[str, Any]) -> EnvVar:
    return EnvVar(**_given(value, {"name": str, "value": str, "secret_key_ref": _key, "config_map_key_ref": _key}))


def _volume(value: Mapping[str, Any]) -> Volume:
    plain = _given(value, {"name": str, "secret": str, "config_map": str, "persistent_volume_claim": str})
    if "empty_dir_size_limit" in value or "empty_dir_medium" in value:
        plain["empty_dir"] = EmptyDir(
            size_limit=str(value.get("empty_dir_size_limit", "")), medium=str(value.get("empty_dir_medium", ""))
        )
    return Volume(**plain)


def _tuple_of(convert: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    return lambda items: tuple(convert(item) for item in items)


def _pod(value: PodOptions) -> PodSettings:
    convert: dict[str, Callable[[Any], Any]] = {
        "service_account": lambda v: ServiceAccount(
            **_given(v, {"name": str, "create": bool, "annotations": dict, "automount_token": bool})
        ),
        "image_pull_secrets": _tuple_of(str),
        "node_selector": dict,
        "tolerations": _tuple_of(
            lambda v: Toleration(
                **_given(v, {"key": str, "operator": str, "value": str, "effect": str, "toleration_seconds": int})
            )
        ),
        "affinity_json": json.loads,
        "priority_class_name": str,
        "topology_spread": _tuple_of(
            lambda v: SpreadConstraint(**_given(v, {"topology_key": str, "max_skew": int, "when_unsatisfiable": str}))
        ),
        "annotations": dict,
        "labels": dict,
        "env": _tuple_of(_env),
        "env_from": _tuple_of(lambda v: EnvFrom(**_given(v, {"secret": str, "config_map": str, "prefix": str}))),
        "volumes": _tuple_of(_volume),
        "volume_mounts": _tuple_of(
            lambda v: VolumeMount(**_given(v, {"name": str, "mount_path": str, "read_only": bool, "sub_path": str}))
        ),
        "python_path": _tuple_of(str),
    }
    given = _given(value, convert)
    if "affinity_json" in given:
        given["affinity"] = given.pop("affinity_json")
    return PodSettings(**given)


def _pool(value: WorkerPool) -> PoolSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        "name": str,
        "queues": tuple,
        "replicas": int,
        "concurrency": int,
        "resources": _pod_resources,
        "log_level": str,
        "pool_type": str,
        "extra_args": _tuple_of(str),
        "pod": _pod,
        "autoscaling": _autoscaling,
    }
    return PoolSpec(**_given(value, convert))


def _autoscaling(value: PoolAutoscaling) -> AutoscalingSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        "max_replicas": int,
        "min_replicas": int,
        "backlog_per_replica": int,
        "polling_interval_seconds": int,
        "cooldown_seconds": int,
        "priority_steps": _tuple_of(int),
    }
    return AutoscalingSpec(**_given(value, convert))


def _beat(value: BeatSettings) -> BeatSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        "enabled": bool,
        "max_interval_seconds": int,
        "resources": _pod_resources,
        "log_level": str,
        "pod": _pod,
    }
    return BeatSpec(**_given(value, convert))


def _external(value: ExternalBrokerSettings) -> ExternalBrokerSpec:
    convert: dict[str, Callable[[Any], Any]] = {
        "url_secret": _key,
        "host": str,
        "port": int,
        "tls": bool,
        "ca_secret": _key,
        "ca_config_map": _key,
        "cidr": str,
        "database": int,
        "password_secret": _key,
        "username_secret": _key,
    }
    return ExternalBrokerSpec(**_given(value, convert))


def _database_egress(url: pulumi.Input[str]) -> tuple[EgressRule, ...]:
    # Only a plain URL can be read here; a secret Output's database needs its CIDR in egressRules.
    rule = database_egress(url) if isinstance(url, str) else None
    return (rule,) if rule else ()


def _egress(value: EgressRuleSettings) -> EgressRule:
    return EgressRule(cidr=str(value["cidr"]), ports=tuple(int(p) for p in value.get("ports", [])))


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
    """Secret: ``redis://:PASSWORD@host:6379/0`` of the platform's Redis; empty with an external broker."""
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
            pod=_pod(args.get("pod") or {}),
            **_given(args, {"longest_task_seconds": int, "heartbeat_max_age_seconds": int, "run_as_user": int}),
        )
        secrets_args = SecretsArgs(
            namespace=args["namespace"],
            # Plain values are checked here; PlatformSecrets makes every value a secret Output.
            database_url=args["database_url"],
            sentry_dsn=args.get("sentry_dsn"),
            rotation=int(args.get("rotation", 0)),
            django_secret_key=args.get("django_secret_key"),
            field_encryption_key=args.get("field_encryption_key"),
            redis_password=args.get("redis_password"),
        )
        external = _external(args["external_broker"]) if "external_broker" in args else None
        broker_url = args.get("broker_url")
        keda = args.get("keda_operator") or {}
        keda_operator = KedaOperator(**_given(keda, {"namespace": str, "pod_labels": dict}))
        namespace_args = NamespaceArgs(
            name=args["namespace"],
            limit_range=limit_range or LimitRangeSpec(),
            quota=quota,
            pod_security_level=str(args.get("pod_security_level", "restricted")),
            egress_cidrs=tuple(str(c) for c in args.get("egress_cidrs", [])),
            egress_rules=(*_database_egress(args["database_url"]), *(_egress(r) for r in args.get("egress_rules", []))),
        )
        # Validate everything the components would, before registering anything: one error, every problem.
        problems = _problems(args["namespace"], limit_range, quota if create_namespace else None, redis)
        problems += [p for p in namespace_args.validate() if p.field.startswith(("podSecurityLevel", "egress"))]
        problems += secrets_args.validate() + settings.validate() + validate_pools(pools) + beat.validate("beat")
        problems += keda_operator.validate("kedaOperator")
        if external is not None:
            problems += external.validate("externalBroker", broker_url, url_given=broker_url is not None)
            problems += external.autoscaling_problems("externalBroker", pools)
        elif broker_url is not None:
            problems.append(Problem("brokerUrl", "is set without externalBroker", "a URL", "unset"))
        if not problems:
            problems += pod_problems(settings, pools, beat)
        if not problems and limit_range is not None:
            tls = external.broker_tls(broker_url if isinstance(broker_url, str) else None) if external else None
            problems += platform_problems(
                settings,
                None if external else redis,
                pools,
                beat,
                limit_range,
                quota if create_namespace else None,
                tls,
            )
        raise_if_any(f"CeleryPlatform {name!r}", problems)
        super().__init__(TYPE_TOKEN, name, None, opts)

        child = pulumi.ResourceOptions(parent=self)
        in_namespace = child
        if create_namespace and limit_range is not None:
            guarded = PlatformNamespace(name, namespace_args, opts=child)
            self.namespace = guarded.name
            in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[guarded])
        else:
            self.namespace = pulumi.Output.from_input(args["namespace"])
        secrets = PlatformSecrets(
            f"{name}-secrets",
            # The checked args, now in the namespace's Output (the created one, when it is ours).
            dataclasses.replace(secrets_args, namespace=self.namespace),
            opts=in_namespace,
        )
        broker: RedisBroker | ExternalBroker
        if external is not None:
            broker = ExternalBroker(
                f"{name}-broker",
                ExternalBrokerArgs(namespace=self.namespace, spec=external, url=broker_url),
                opts=in_namespace,
            )
        else:
            broker = RedisBroker(
                f"{name}-redis",
                RedisBrokerArgs(
                    namespace=self.namespace,
                    secrets=secrets,
                    spec=redis,
                    cluster_domain=args.get("cluster_domain", "cluster.local"),
                    limit_range=limit_range,
                    pod=settings.pod,
                    keda_operator=keda_operator if any(is_autoscaled(p) for p in pools) else None,
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
        self.broker_host = pulumi.Output.from_input(broker.host)
        self.broker_port = pulumi.Output.from_input(broker.port)
        # An external broker's URL is not ours to hand out: the output is empty then.
        self.broker_url = broker.url if isinstance(broker, RedisBroker) else pulumi.Output.secret("")
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
