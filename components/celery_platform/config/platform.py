"""CeleryPlatformArgs: the whole platform as one frozen dataclass, the one schema of every way in.

The stack config, the component package's schema (every language) and the configuration reference
are derived from these fields: each field's type, description and default is written here once.
``validate()`` is the one place where a whole platform is checked: every rule of every field, then
the admission arithmetic of every pod against the LimitRange and ResourceQuota.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from celery_platform.builders.admission import PodPlan, check_routes, unique
from celery_platform.builders.celery_pods import platform_problems, pod_problems, validate_pools
from celery_platform.builders.exporter import exporter_plan
from celery_platform.builders.redis_pod import redis_plan
from celery_platform.builders.sentinel_pods import SentinelNames, node_addresses, sentinel_addresses, sentinel_plans
from celery_platform.config.autoscaling import KedaOperator, is_autoscaled
from celery_platform.config.broker import BrokerChoice, BrokerTLS
from celery_platform.config.egress import POD_SECURITY_LEVELS, EgressRule
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.monitoring import MonitoringSpec
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, redacted, shown
from celery_platform.config.rotation import Rotation, rotation_problems
from celery_platform.config.secret_values import (
    check_broker_url,
    check_database_url,
    check_django_secret_key,
    check_fernet_key,
    check_redis_password,
    check_sentry_dsn,
)
from celery_platform.config.sentinel import persistence_problems
from celery_platform.config.specs import BeatSpec, PodResources, PoolSpec, RedisSpec, pod_resources
from celery_platform.config.validation import check_count, check_dns_label, check_dns_subdomain, check_image_pinned
from celery_platform.config.workload import MAX_LONGEST_TASK_SECONDS, WorkloadSettings, check_celery_app

# More pools than this is a typo or a generator gone wrong, and would take minutes to preview.
MAX_POOLS = 100
# dataclasses.field(metadata=...): a secret field (never shown, always a secret Output), and a field
# that is no setting at all (not in the schema, the stack config or the reference).
SECRET = {"secret": True}
INTERNAL = {"schema": False}


@dataclass(frozen=True, kw_only=True)
class CeleryPlatformArgs:
    """A Celery platform: namespace guardrails, generated secrets, a Redis broker, worker pools and one beat."""

    namespace: str = "celery-platform"
    """Kubernetes namespace that holds the whole platform (an RFC 1123 label). Default: ``celery-platform``."""
    create_namespace: bool = True
    """Create the namespace with its LimitRange, ResourceQuota and NetworkPolicies; false deploys into an
    existing namespace, whose guardrails limitRange and quota then describe. Default: ``true``."""
    pod_security_level: str = "restricted"
    """Pod Security level of a created namespace: privileged, baseline or restricted. Default: ``restricted``."""
    cluster_domain: str = "cluster.local"
    """The cluster's DNS domain, used to build the broker host. Default: ``cluster.local``."""
    rotation: Rotation = field(default_factory=Rotation)
    """Keepers: bump rotation.djangoSecretKey, rotation.redisPassword or rotation.fieldEncryptionKey to
    regenerate that key alone. Default: every keeper ``0``."""
    protect_field_encryption_key: bool = True
    """Protect the generated FIELD_ENCRYPTION_KEY: the engine refuses to replace or delete it. Default: ``true``."""
    limit_range: LimitRangeSpec = field(default_factory=LimitRangeSpec)
    """The namespace LimitRange (defaultRequest, default, min, max, maxLimitRequestRatio); every pod is checked
    against it before anything is created.
    Default: each of its fields' defaults."""
    quota: QuotaSpec = field(default_factory=QuotaSpec)
    """The namespace ResourceQuota totals; the worst case of a rollout is checked against them.
    Default: each of its fields' defaults."""
    image: str
    """The app image with Celery and the tasks, pinned by tag or digest. Required."""
    celery_app: str = "app"
    """The Celery app as ``celery -A`` takes it, e.g. ``proj`` or ``proj.celery:app``. Default: ``app``."""
    longest_task_seconds: int = 300
    """Longest task: the visibility timeout and the grace period of ``shutdown: finish`` pools follow it.
    Default: ``300``."""
    heartbeat_max_age_seconds: int = 60
    """Liveness: how stale the worker heartbeat may be; covers a broker reconnect. Default: ``60``."""
    run_as_user: int = 10001
    """Non-root UID (and GID, fsGroup) of the Celery pods. Default: ``10001``."""
    queues: tuple[str, ...] = ()
    """Every queue the app uses; each must have a consuming pool. Default: none beyond the pools' own."""
    task_routes: dict[str, str] = field(default_factory=dict)
    """Task name (or a glob, ``proj.reports.*``) to queue. Every worker and beat routes by it, ahead of the app's own
    ``task_routes`` (a ``queue=`` given when sending still wins); each queue must have a consuming pool; the
    ``taskRoutes`` stack output hands it to producers outside the platform. Default: none."""
    redis: RedisSpec = field(default_factory=RedisSpec)
    """The Redis broker of ours (image, persistent, storageSize, storageClass, resources).
    Default: each of its fields' defaults."""
    pools: tuple[PoolSpec, ...]
    """Worker pools (name, queues, replicas, concurrency, resources, autoscaling), one Deployment each. Required."""
    beat: BeatSpec = field(default_factory=BeatSpec)
    """The single beat (enabled, maxIntervalSeconds, resources). Default: enabled, its fields' defaults."""
    init_resources: PodResources = field(default_factory=lambda: pod_resources("10m", "16Mi", "20m", "32Mi"))
    """Resources of the wait-for-broker init container (requests, limits); LimitRange applies to it.
    Default: ``10m``/``16Mi`` requests, ``20m``/``32Mi`` limits."""
    rollout_timeout_seconds: int = 600
    """How long ``pulumi up`` waits for Redis, a pool or beat to become ready before it fails. Default: ``600``."""
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    """The metrics exporter, ServiceMonitor, PrometheusRule thresholds (alerts) and Grafana dashboard.
    Default: all on."""
    pod: PodSettings = field(default_factory=PodSettings)
    """Settings of every Celery pod (serviceAccount, imagePullSecrets, placement, env, volumes, pythonPath);
    a pool or beat may override each field. Default: none of them."""
    broker: BrokerChoice = field(default_factory=BrokerChoice)
    """The broker: ``type: redis`` (ours) or ``type: external`` with its host, URL Secret, TLS and CIDR.
    Default: ours."""
    egress: tuple[EgressRule, ...] = ()
    """Extra egress rules (cidr, ports) besides DNS, the broker and a database named by IP address.
    Default: none."""
    keda_operator: KedaOperator = field(default_factory=KedaOperator)
    """Where the KEDA operator runs (namespace, podLabels); our Redis admits it when a pool autoscales.
    Default: namespace ``keda``."""
    preflight: bool = True
    """Look the cluster up before anything is applied (preview and up): refuse when it lacks a CRD that the stack
    creates (KEDA's with autoscaling, the Prometheus Operator's with monitoring), warn about each Secret or
    ConfigMap that a setting names and the namespace lacks; skipped, and said so, without cluster access.
    Default: ``true``."""
    database_url: pulumi.Input[str] = field(metadata=SECRET)
    """Secret: PostgreSQL URL of the app's database (``DATABASE_URL``). Required."""
    sentry_dsn: pulumi.Input[str] | None = field(default=None, metadata=SECRET)
    """Secret, optional: Sentry DSN https://KEY@HOST/PROJECT; no ``SENTRY_DSN`` when unset. Default: unset."""
    django_secret_key: pulumi.Input[str] | None = field(default=None, metadata=SECRET)
    """Secret, optional: replaces the generated Django SECRET_KEY. Default: generated."""
    field_encryption_key: pulumi.Input[str] | None = field(default=None, metadata=SECRET)
    """Secret, optional: replaces the generated Fernet FIELD_ENCRYPTION_KEY. Default: generated."""
    redis_password: pulumi.Input[str] | None = field(default=None, metadata=SECRET)
    """Secret, optional: replaces the generated Redis password. Default: generated."""
    broker_url: pulumi.Input[str] | None = field(default=None, metadata=SECRET)
    """Secret, optional: the external broker's URL redis[s]://:PASSWORD@HOST:PORT/DB. Default: unset."""
    secret_fields: frozenset[str] = field(default=frozenset(), metadata=INTERNAL)
    """Fields (camelCase) that the caller holds as secret besides the secret ones: what derives from them stays
    secret, and no part of them appears in a message. Default: none."""

    def validate(self) -> list[Problem]:
        """Return every problem of the platform: each field's own rules, then how the pods fit together."""
        problems = field_problems(self)
        if problems:
            return problems
        return unique(admission_problems(self))

    def workload_settings(self) -> WorkloadSettings:
        """Return the settings every Celery pod of the platform shares."""
        return WorkloadSettings(
            image=self.image,
            app=self.celery_app,
            redis_image=self.redis.image,
            longest_task_seconds=self.longest_task_seconds,
            heartbeat_max_age_seconds=self.heartbeat_max_age_seconds,
            run_as_user=self.run_as_user,
            init_resources=self.init_resources,
            rollout_timeout_seconds=self.rollout_timeout_seconds,
            pod=self.pod,
            task_routes=self.task_routes,
        )

    def monitoring_queues(self) -> list[str]:
        """Return every queue the exporter measures: the platform's queues and every pool's."""
        return sorted({*self.queues, *(q for p in self.pools for q in p.queues)})

    def monitoring_plans(self, tls: BrokerTLS | None = None) -> list[PodPlan]:
        """Return the exporter pod for admission, when monitoring is on."""
        if not self.monitoring.enabled:
            return []
        return [
            exporter_plan(
                image=self.image,
                spec=self.monitoring,
                queues=self.monitoring_queues(),
                run_as_user=self.run_as_user,
                tls=tls,
                pod=self.pod.merged(self.monitoring.pod),
            )
        ]

    def plain(self, name: str) -> str | None:
        """Return a secret field's value when it is a plain string, else None (unset, or an Output)."""
        value = getattr(self, name)
        return value if isinstance(value, str) and value else None


def _plain_check(check: Callable[[str, str], list[Problem]]) -> Callable[[str, Any], list[Problem]]:
    """A secret's rule: checked when its value is plain text; an Output is checked when it resolves."""
    return lambda name, value: check(name, value) if isinstance(value, str) and value else []


def _check_cluster_domain(name: str, value: str) -> list[Problem]:
    """The broker host is ``<service>.<namespace>.svc.<clusterDomain>``: a DNS subdomain, nothing else.

    Anything more (``cluster.local@evil.example``) would move the host part of the secret broker URL.
    """
    return check_dns_subdomain(name, value, max_length=253 - len("redis.svc.") - 63 - 1)


def _check_pod_security_level(name: str, value: str) -> list[Problem]:
    if value in POD_SECURITY_LEVELS:
        return []
    return [Problem(name, "unknown level", shown(value), " or ".join(POD_SECURITY_LEVELS))]


def _check_pools(name: str, pools: tuple[PoolSpec, ...]) -> list[Problem]:
    if len(pools) > MAX_POOLS:
        return [Problem(name, "too many pools", f"{len(pools)} pools", f"at most {MAX_POOLS}")]
    if not pools:
        return [Problem(name, "is empty", "[]", "at least one pool")]
    return validate_pools(pools)


# The rule of each field, by its camelCase name: the one home of every per-field check.
FIELD_RULES: Mapping[str, Callable[[str, Any], list[Problem]]] = {
    "namespace": check_dns_label,
    "image": check_image_pinned,
    "celeryApp": check_celery_app,
    "podSecurityLevel": _check_pod_security_level,
    "clusterDomain": _check_cluster_domain,
    "rotation": rotation_problems,
    "limitRange": lambda name, spec: spec.validate(name),
    "quota": lambda name, spec: spec.validate(name),
    "longestTaskSeconds": lambda name, value: check_count(name, value, 1, MAX_LONGEST_TASK_SECONDS),
    "heartbeatMaxAgeSeconds": lambda name, value: check_count(name, value, 10),
    "runAsUser": lambda name, value: check_count(name, value, 1),
    "rolloutTimeoutSeconds": lambda name, value: check_count(name, value, 30),
    "redis": lambda name, spec: spec.validate(name),
    "pools": _check_pools,
    "beat": lambda name, spec: spec.validate(name),
    "initResources": lambda name, spec: spec.validate(name),
    "monitoring": lambda name, spec: spec.validate(name),
    "pod": lambda name, spec: spec.validate(name) + spec.validate_references(name),
    "broker": lambda name, spec: spec.validate(name),
    "kedaOperator": lambda name, spec: spec.validate(name),
    "egress": lambda name, rules: [p for i, rule in enumerate(rules) for p in rule.validate(f"{name}[{i}]")],
    # Required: an empty plain value is refused too (the optional secrets' empty value means unset).
    "databaseUrl": lambda name, value: check_database_url(name, value) if isinstance(value, str) else [],
    "sentryDsn": _plain_check(check_sentry_dsn),
    "djangoSecretKey": _plain_check(check_django_secret_key),
    "fieldEncryptionKey": _plain_check(check_fernet_key),
    "redisPassword": _plain_check(check_redis_password),
    "brokerUrl": _plain_check(check_broker_url),
}


def camel(name: str) -> str:
    """A field's name as the schema, the stack config and every message spell it."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def field_problems(args: CeleryPlatformArgs, names: frozenset[str] | None = None) -> list[Problem]:
    """Return the problems of each field's own rule (of ``names`` alone, when given)."""
    problems: list[Problem] = []
    for f in dataclasses.fields(args):
        name = camel(f.name)
        rule = FIELD_RULES.get(name)
        if rule is not None and (names is None or name in names):
            problems += rule(name, getattr(args, f.name))
    return problems


def broker_problems(args: CeleryPlatformArgs) -> list[Problem]:
    """Check the external broker against brokerUrl: one URL source, and what it implies; ours with Sentinel
    against the ``redis`` key it takes its data nodes from."""
    url = args.broker_url
    if args.broker.external is None:
        problems: list[Problem] = []
        if url is not None and url != "":
            shown_url = redacted(url) if isinstance(url, str) else "a secret Output"
            problems.append(Problem("brokerUrl", f"is set, but broker.type is {args.broker.type}", shown_url, "unset"))
        if args.broker.sentinel_spec() is not None:
            problems += persistence_problems(args.redis)
        return problems
    external = args.broker.external
    plain = args.plain("broker_url")
    given = url is not None and url != ""
    problems = external.validate("broker.external", plain, url_given=given)
    return problems + external.autoscaling_problems("broker.external", args.pools)


def broker_hosts(args: CeleryPlatformArgs) -> list[str]:
    """Every DNS name of our broker: its Service, or each data node's and Sentinel's."""
    sentinel = args.broker.sentinel_spec()
    if sentinel is None:
        return [f"redis.{args.namespace}.svc.{args.cluster_domain}"]
    names = SentinelNames("redis")
    addresses = node_addresses(names, sentinel, args.namespace, args.cluster_domain)
    addresses += sentinel_addresses(names, sentinel, args.namespace, args.cluster_domain)
    return [address.rsplit(":", 1)[0] for address in addresses]


def broker_plans(args: CeleryPlatformArgs) -> list[PodPlan]:
    """Return our broker's pods as admission sees them: one Redis, the Sentinel set, or none (external)."""
    if args.broker.external is not None:
        return []
    sentinel = args.broker.sentinel_spec()
    if sentinel is not None:
        return sentinel_plans(args.redis, sentinel, args.pod)
    return [redis_plan(args.redis, args.pod)]


def admission_problems(args: CeleryPlatformArgs) -> list[Problem]:
    """Check every pod against the LimitRange and ResourceQuota, and every queue and route for a pool."""
    settings = args.workload_settings()
    problems = broker_problems(args)
    if problems:
        return problems
    problems += pod_problems(settings, args.pools, args.beat)
    external = args.broker.external
    tls = external.broker_tls(args.plain("broker_url")) if external is not None else None
    problems += platform_problems(
        settings,
        broker_plans(args),
        args.pools,
        args.beat,
        args.limit_range,
        args.quota if args.create_namespace else None,
        tls,
        args.monitoring_plans(tls),
    )
    problems += check_routes(
        {p.name: p.queues for p in args.pools},
        list(args.queues),
        args.task_routes,
        idle_pools={p.name for p in args.pools if p.replicas == 0 and not is_autoscaled(p)},
    )
    if external is None:
        host = max(broker_hosts(args), key=len)
        if len(host) > 253:
            problems.append(
                Problem(
                    "clusterDomain", "makes the broker host longer than 253 characters", shown(host), "a shorter name"
                )
            )
    return problems
