"""The celery-platform program: read the stack config, compose the components, export the outputs."""

import pulumi

from celery_platform.build.workloads import visibility_timeout_seconds
from celery_platform.config.autoscaling import all_at_zero_warning, is_autoscaled
from celery_platform.config.stack import load_stack_config, monitoring_queues, workload_settings
from celery_platform.resources.broker import ExternalBroker, ExternalBrokerArgs
from celery_platform.resources.monitoring import CeleryMonitoring, CeleryMonitoringArgs
from celery_platform.resources.namespace import NamespaceArgs, PlatformNamespace, database_egress
from celery_platform.resources.redis import RedisBroker, RedisBrokerArgs
from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
from celery_platform.resources.workers import CeleryWorkers, CeleryWorkersArgs


def _secret(value: str) -> pulumi.Output[str] | None:
    """Wrap a secret config value, or give None when the stack leaves it unset."""
    return pulumi.Output.secret(value) if value else None


config = load_stack_config()

# Egress: DNS and the namespace always; the database when its URL names it by address; the stack's rules.
database = database_egress(config.database_url)
namespace = PlatformNamespace(
    "celery-platform",
    NamespaceArgs(
        name=config.namespace,
        limit_range=config.limit_range,
        quota=config.quota,
        egress_rules=(*([database] if database else []), *config.egress),
    ),
)
if database is None and not config.egress:
    pulumi.log.warn(
        "databaseUrl names its host by DNS and the egress key is empty: NetworkPolicy admits addresses, not "
        "names, so add the database's CIDR and port to egress (or the pods cannot reach it)",
        resource=namespace,
    )
secrets = PlatformSecrets(
    "celery-secrets",
    SecretsArgs(
        namespace=namespace.name,
        rotation=config.rotation,
        protect_field_encryption_key=config.protect_field_encryption_key,
        database_url=pulumi.Output.secret(config.database_url),
        sentry_dsn=_secret(config.sentry_dsn),
        django_secret_key=_secret(config.django_secret_key),
        field_encryption_key=_secret(config.field_encryption_key),
        redis_password=_secret(config.redis_password),
    ),
    opts=pulumi.ResourceOptions(depends_on=[namespace]),
)

broker: RedisBroker | ExternalBroker
if config.broker.external is not None:
    broker = ExternalBroker(
        "broker",
        # The component keeps the URL secret: it only ever reaches a Secret's stringData.
        ExternalBrokerArgs(namespace=namespace.name, spec=config.broker.external, url=config.broker_url or None),
        opts=pulumi.ResourceOptions(depends_on=[namespace]),
    )
else:
    broker = RedisBroker(
        "redis",
        RedisBrokerArgs(
            namespace=namespace.name,
            secrets=secrets,
            spec=config.redis,
            # A domain the stack holds as secret keeps the broker host, and every env var of it, secret.
            cluster_domain=(
                pulumi.Output.secret(config.cluster_domain)
                if "clusterDomain" in config.secret_keys
                else config.cluster_domain
            ),
            limit_range=namespace.limit_range,
            pod=config.pod,
            rollout_timeout_seconds=config.rollout_timeout_seconds,
            keda_operator=config.keda_operator if any(is_autoscaled(p) for p in config.pools) else None,
        ),
    )
workers = CeleryWorkers(
    "celery",
    CeleryWorkersArgs(
        namespace=namespace.name,
        secrets=secrets,
        broker=broker,
        settings=workload_settings(config),
        pools=config.pools,
        beat=config.beat,
        limit_range=namespace.limit_range,
    ),
)

if not config.monitoring.enabled and (at_zero := all_at_zero_warning(config.pools)):
    pulumi.log.warn(at_zero)
if config.monitoring.enabled:
    CeleryMonitoring(
        "celery-exporter",
        CeleryMonitoringArgs(
            namespace=namespace.name,
            broker=broker,
            image=config.image,
            queues=monitoring_queues(config),
            spec=config.monitoring,
            beat_max_interval_seconds=config.beat.max_interval_seconds if config.beat.enabled else None,
            limit_range=namespace.limit_range,
            # The exporter sweeps hard-killed workers' tasks back to their queues, as workers do.
            visibility_timeout_seconds=visibility_timeout_seconds(config.longest_task_seconds),
        ),
    )

pulumi.export("namespace", namespace.name)
pulumi.export("secretName", secrets.secret_name)
pulumi.export("brokerHost", broker.host)
pulumi.export("brokerPort", broker.port)
if isinstance(broker, RedisBroker):
    pulumi.export("brokerUrl", broker.url)
pulumi.export("workerDeployments", {name: d.metadata.name for name, d in workers.deployments.items()})
