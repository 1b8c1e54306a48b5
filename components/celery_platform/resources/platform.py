"""CeleryPlatform: the whole platform, the one composition that the stack, the render and every package consumer use."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pulumi

from celery_platform.builders.workloads import visibility_timeout_seconds
from celery_platform.config.autoscaling import all_at_zero_warning, is_autoscaled, name_problems
from celery_platform.config.egress import database_egress
from celery_platform.config.platform import CeleryPlatformArgs, camel
from celery_platform.config.problems import mask_secrets, raise_if_any
from celery_platform.resources.broker import ExternalBroker, ExternalBrokerArgs
from celery_platform.resources.monitoring import CeleryMonitoring, CeleryMonitoringArgs
from celery_platform.resources.namespace import NamespaceArgs, PlatformNamespace
from celery_platform.resources.preflight import preflight
from celery_platform.resources.redis import RedisBroker, RedisBrokerArgs
from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
from celery_platform.resources.sentinel import SentinelBroker, SentinelBrokerArgs
from celery_platform.resources.workers import CeleryWorkers, CeleryWorkersArgs

TYPE_TOKEN = "celery-platform:index:CeleryPlatform"
# The names of the stack's components before they had a parent: a contract with existing state.
REDIS_OBJECT_NAME = "redis"
EXTERNAL_OBJECT_NAME = "broker"


class CeleryPlatform(pulumi.ComponentResource):
    """A Celery platform: guarded namespace, generated secrets, a Redis broker, worker pools, beat and monitoring.

    Every argument is validated first, all at once: one error lists every problem, and nothing is
    registered on a refusal. The children are the reusable components, with ``parent=self``.
    """

    namespace: pulumi.Output[str]
    """The namespace that holds every object."""
    secret_name: pulumi.Output[str]
    """The Secret: SECRET_KEY, FIELD_ENCRYPTION_KEY, REDIS_PASSWORD, DATABASE_URL, SENTRY_DSN (SENTINEL_PASSWORD with
    Sentinel)."""
    broker_host: pulumi.Output[str]
    """The broker's host: our Redis Service's cluster DNS name (with Sentinel, the Sentinels' Service), or
    the external broker's."""
    broker_port: pulumi.Output[int]
    """The broker's port (with Sentinel, the Sentinels' 26379)."""
    broker_url: pulumi.Output[str]
    """Secret: redis://:PASSWORD@host:6379/0 of the platform's Redis (with Sentinel, the ``sentinel://`` URL of
    every Sentinel); empty with an external broker."""
    worker_deployments: pulumi.Output[dict[str, str]]
    """Pool name to Deployment name."""
    task_routes: pulumi.Output[dict[str, str]]
    """Task name (or glob) to queue: the routes that every worker and beat applies, for producers outside
    the platform to route the same way (``app.conf.task_routes``)."""

    # Children created under a CeleryPlatform were validated with the whole platform (see validated_by_parent).
    validates_children = True

    def __init__(self, name: str, args: CeleryPlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.validate()
        if not problems:
            problems = name_problems(name, args.pools)
        raise_if_any(f"CeleryPlatform {name!r}", mask_secrets(problems, secret_texts(args)))
        # Before registering anything: a missing CRD refuses here, not half-way through `up`.
        missing = preflight(f"CeleryPlatform {name!r}", args, opts) if args.preflight else []
        super().__init__(TYPE_TOKEN, name, None, opts)
        for missing_objects in missing:
            pulumi.log.warn(missing_objects, resource=self)
        # The stack's components were top-level before this component existed: alias their old URNs.
        moved = [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
        database = database_egress(args.database_url) if isinstance(args.database_url, str) else None
        in_namespace = pulumi.ResourceOptions(parent=self, aliases=moved)
        if args.create_namespace:
            guarded = PlatformNamespace(
                f"{name}-platform",
                NamespaceArgs(
                    name=args.namespace,
                    limit_range=args.limit_range,
                    quota=args.quota,
                    pod_security_level=args.pod_security_level,
                    egress_rules=(*([database] if database else []), *args.egress),
                ),
                opts=pulumi.ResourceOptions(parent=self, aliases=moved),
            )
            self.namespace = guarded.name
            in_namespace = pulumi.ResourceOptions(parent=self, aliases=moved, depends_on=[guarded])
            if database is None and not args.egress:
                # A package consumer's databaseUrl is a secret Output, whose host is unknown until it resolves.
                unread = "names its host by DNS" if isinstance(args.database_url, str) else "is an Output, unread here,"
                pulumi.log.warn(
                    f"databaseUrl {unread} and the egress key is empty: NetworkPolicy admits addresses, "
                    "not names, so add the database's CIDR and port to egress (or the pods cannot reach it)",
                    resource=guarded,
                )
        else:
            self.namespace = pulumi.Output.from_input(args.namespace)
        self.secrets = PlatformSecrets(
            f"{name}-secrets",
            SecretsArgs(
                namespace=self.namespace,
                rotation=args.rotation,
                protect_field_encryption_key=args.protect_field_encryption_key,
                database_url=pulumi.Output.secret(args.database_url),
                sentry_dsn=_secret(args.sentry_dsn),
                django_secret_key=_secret(args.django_secret_key),
                field_encryption_key=_secret(args.field_encryption_key),
                redis_password=_secret(args.redis_password),
                # An external broker's password is in its URL: ours would be generated, kept and rotated
                # for nothing, and a change to it would replace the Secret and roll every pod.
                holds_redis_password=args.broker.external is None,
                holds_sentinel_password=args.broker.sentinel_spec() is not None,
            ),
            opts=in_namespace,
        )
        self.broker: RedisBroker | SentinelBroker | ExternalBroker
        # A domain held as secret keeps the broker host, and every env var of it, secret.
        cluster_domain = (
            pulumi.Output.secret(args.cluster_domain) if "clusterDomain" in args.secret_fields else args.cluster_domain
        )
        keda_operator = args.keda_operator if any(is_autoscaled(p) for p in args.pools) else None
        sentinel = args.broker.sentinel_spec()
        if args.broker.external is not None and (warning := unused_redis_password_warning(args)):
            pulumi.log.warn(warning, resource=self)
        if sentinel is None and args.rotation.sentinel_password != 0:
            pulumi.log.warn(
                f"rotation.sentinelPassword is ignored: broker.type is {args.broker.type}, which runs no Sentinel "
                "of ours, so no Sentinel password is generated, kept or rotated",
                resource=self,
            )
        if args.broker.external is not None:
            self.broker = ExternalBroker(
                f"{name}-broker",
                # The component keeps the URL secret: it only ever reaches a Secret's stringData.
                ExternalBrokerArgs(
                    namespace=self.namespace,
                    spec=args.broker.external,
                    url=args.broker_url or None,
                    object_name=EXTERNAL_OBJECT_NAME,
                ),
                opts=pulumi.ResourceOptions.merge(
                    in_namespace, pulumi.ResourceOptions(aliases=[_moved_as(EXTERNAL_OBJECT_NAME)])
                ),
            )
        elif sentinel is not None:
            self.broker = SentinelBroker(
                f"{name}-sentinel",
                SentinelBrokerArgs(
                    namespace=self.namespace,
                    secrets=self.secrets,
                    spec=sentinel,
                    redis=args.redis,
                    cluster_domain=cluster_domain,
                    limit_range=args.limit_range,
                    pod=args.pod,
                    object_name=REDIS_OBJECT_NAME,
                    rollout_timeout_seconds=args.rollout_timeout_seconds,
                    keda_operator=keda_operator,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        else:
            self.broker = RedisBroker(
                f"{name}-redis",
                RedisBrokerArgs(
                    namespace=self.namespace,
                    secrets=self.secrets,
                    spec=args.redis,
                    cluster_domain=cluster_domain,
                    limit_range=args.limit_range,
                    pod=args.pod,
                    rollout_timeout_seconds=args.rollout_timeout_seconds,
                    keda_operator=keda_operator,
                    object_name=REDIS_OBJECT_NAME,
                ),
                opts=pulumi.ResourceOptions(parent=self, aliases=[_moved_as(REDIS_OBJECT_NAME)]),
            )
        self.workers = CeleryWorkers(
            name,
            CeleryWorkersArgs(
                namespace=self.namespace,
                secrets=self.secrets,
                broker=self.broker,
                settings=args.workload_settings(),
                pools=args.pools,
                beat=args.beat,
                limit_range=args.limit_range,
            ),
            opts=pulumi.ResourceOptions(parent=self, aliases=moved),
        )
        self.monitoring: CeleryMonitoring | None = None
        if args.monitoring.enabled:
            self.monitoring = CeleryMonitoring(
                f"{name}-exporter",
                CeleryMonitoringArgs(
                    namespace=self.namespace,
                    broker=self.broker,
                    image=args.image,
                    queues=args.monitoring_queues(),
                    spec=args.monitoring,
                    beat_max_interval_seconds=args.beat.max_interval_seconds if args.beat.enabled else None,
                    run_as_user=args.run_as_user,
                    limit_range=args.limit_range,
                    # The exporter sweeps hard-killed workers' tasks back to their queues, as workers do.
                    visibility_timeout_seconds=visibility_timeout_seconds(args.longest_task_seconds),
                    pod=args.pod,
                    # A ServiceAccount that pod.serviceAccount creates is the workers' (named after them).
                    service_account_default=name,
                ),
                opts=pulumi.ResourceOptions(parent=self, aliases=moved),
            )
        elif at_zero := all_at_zero_warning(args.pools):
            pulumi.log.warn(at_zero, resource=self)

        self.secret_name = self.secrets.secret_name
        self.broker_host = pulumi.Output.from_input(self.broker.host)
        self.broker_port = pulumi.Output.from_input(self.broker.port)
        # An external broker's URL is not ours to hand out: the output is empty then.
        self.broker_url = (
            self.broker.url if isinstance(self.broker, RedisBroker | SentinelBroker) else pulumi.Output.secret("")
        )
        names = {pool: deployment.metadata.name for pool, deployment in self.workers.deployments.items()}
        self.worker_deployments = pulumi.Output.all(**names) if names else pulumi.Output.from_input({})
        self.task_routes = pulumi.Output.from_input(dict(args.task_routes))
        self.register_outputs(
            {
                "namespace": self.namespace,
                "secretName": self.secret_name,
                "brokerHost": self.broker_host,
                "brokerPort": self.broker_port,
                "brokerUrl": self.broker_url,
                "workerDeployments": self.worker_deployments,
                "taskRoutes": self.task_routes,
            }
        )


def unused_redis_password_warning(args: CeleryPlatformArgs) -> str | None:
    """Say so when a stack with an external broker rotates or sets the Redis password, which that broker never uses."""
    given = [
        name
        for name, used in (
            ("rotation.redisPassword", args.rotation.redis_password != 0),
            ("redisPassword", args.redis_password is not None and args.redis_password != ""),
        )
        if used
    ]
    if not given:
        return None
    return (
        f"{' and '.join(given)} is ignored: broker.type is external, whose password is in brokerUrl or its URL "
        "Secret, so the platform Secret holds no Redis password and nothing is replaced or rolled for it (rotate "
        "the password at the broker's provider, then set the new brokerUrl or update the URL Secret)"
    )


def _secret(value: pulumi.Input[str] | None) -> pulumi.Output[str] | None:
    """A secret Output of an optional secret, or None when it is unset."""
    if value is None or value == "":
        return None
    return pulumi.Output.secret(value)


def _moved_as(old_name: str) -> pulumi.Alias:
    """The alias of a child that was a top-level component named ``old_name`` (its children follow it)."""
    return pulumi.Alias(name=old_name, parent=pulumi.ROOT_STACK_RESOURCE)


def _leaves(value: Any) -> Iterator[str]:
    """Every scalar of a value, and every key of a mapping in it, as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _leaves(item)
    elif isinstance(value, list | tuple | frozenset):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, pulumi.Output | bool):
        yield str(value)


def secret_texts(args: CeleryPlatformArgs) -> list[str]:
    """Every text that must not reach a message: the secret fields' values and those the caller holds secret."""
    texts: list[str] = []
    for f in dataclasses.fields(args):
        if f.metadata.get("secret") or camel(f.name) in args.secret_fields:
            texts += [t for t in _leaves(getattr(args, f.name)) if t]
    return texts
