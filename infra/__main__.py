"""The celery-platform program: read the stack config, compose the components, export the outputs."""

import pulumi

from celery_platform.monitoring import CeleryMonitoring, CeleryMonitoringArgs
from celery_platform.namespace import NamespaceArgs, PlatformNamespace
from celery_platform.redis import RedisBroker, RedisBrokerArgs
from celery_platform.secrets import PlatformSecrets, SecretsArgs
from celery_platform.stack_config import load_stack_config, monitoring_queues, workload_settings
from celery_platform.workers import CeleryWorkers, CeleryWorkersArgs


def _secret(value: str) -> pulumi.Output[str] | None:
    """Wrap a secret config value, or give None when the stack leaves it unset."""
    return pulumi.Output.secret(value) if value else None


config = load_stack_config()

namespace = PlatformNamespace(
    "celery-platform",
    NamespaceArgs(name=config.namespace, limit_range=config.limit_range, quota=config.quota),
)
secrets = PlatformSecrets(
    "celery-secrets",
    SecretsArgs(
        namespace=namespace.name,
        rotation=config.rotation,
        database_url=pulumi.Output.secret(config.database_url),
        sentry_dsn=_secret(config.sentry_dsn),
        django_secret_key=_secret(config.django_secret_key),
        field_encryption_key=_secret(config.field_encryption_key),
        redis_password=_secret(config.redis_password),
    ),
    opts=pulumi.ResourceOptions(depends_on=[namespace]),
)

broker = RedisBroker(
    "redis",
    RedisBrokerArgs(
        namespace=namespace.name,
        secrets=secrets,
        spec=config.redis,
        cluster_domain=config.cluster_domain,
        limit_range=namespace.limit_range,
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
        ),
    )

pulumi.export("namespace", namespace.name)
pulumi.export("secretName", secrets.secret_name)
pulumi.export("brokerHost", broker.host)
pulumi.export("brokerPort", broker.port)
pulumi.export("brokerUrl", broker.url)
pulumi.export("workerDeployments", {name: d.metadata.name for name, d in workers.deployments.items()})
