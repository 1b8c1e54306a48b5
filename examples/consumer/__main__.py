"""The reports team's stack: two Celery worker pools on a namespace that another team runs.

It reuses the celery-platform components in its own shape. The namespace exists already, with
guardrails that belong to its owners, so there is no PlatformNamespace: the name comes from this
stack's config. The team runs its own PlatformSecrets and RedisBroker, two pools and no beat.
"""

import pulumi

from celery_platform import (
    BeatSpec,
    CeleryWorkers,
    CeleryWorkersArgs,
    LimitRangeSpec,
    PlatformSecrets,
    PodResources,
    PoolSpec,
    RedisBroker,
    RedisBrokerArgs,
    RedisSpec,
    Resources,
    SecretsArgs,
    WorkloadSettings,
)

config = pulumi.Config()
namespace = config.require("namespace")

# The existing namespace's LimitRange, as its owners publish it: every pod is checked against it
# before anything is registered, instead of being refused by the LimitRanger after `pulumi up`.
namespace_limits = LimitRangeSpec()

secrets = PlatformSecrets(
    "reports-secrets",
    SecretsArgs(namespace=namespace, database_url=config.require_secret("databaseUrl")),
)
broker = RedisBroker(
    "reports-redis",
    RedisBrokerArgs(
        namespace=namespace,
        secrets=secrets,
        spec=RedisSpec(
            resources=PodResources(
                requests=Resources(cpu="50m", memory="128Mi"), limits=Resources(cpu="100m", memory="256Mi")
            )
        ),
        cluster_domain=config.get("clusterDomain", "cluster.local"),
        limit_range=namespace_limits,
    ),
)
workers = CeleryWorkers(
    "reports",
    CeleryWorkersArgs(
        namespace=namespace,
        secrets=secrets,
        broker=broker,
        settings=WorkloadSettings(
            image=config.require("image"),
            app=config.get("celeryApp", "reports"),
            # Exports of large reports run for up to 15 minutes; grace period and visibility timeout follow.
            longest_task_seconds=900,
        ),
        pools=[
            PoolSpec(name="ingest", queues=("ingest",), replicas=2, concurrency=2),
            PoolSpec(
                name="export",
                queues=("export", "export-large"),
                replicas=config.get_int("exportReplicas", 1),
                # One task at a time: an export holds a whole report in memory.
                concurrency=1,
                resources=PodResources(
                    requests=Resources(cpu="200m", memory="512Mi"), limits=Resources(cpu="400m", memory="1Gi")
                ),
            ),
        ],
        # The platform team's beat schedules these tasks; a second beat would send each one twice.
        beat=BeatSpec(enabled=False),
        limit_range=namespace_limits,
    ),
)

pulumi.export("namespace", namespace)
pulumi.export("secretName", secrets.secret_name)
pulumi.export("brokerHost", broker.host)
pulumi.export("brokerUrl", broker.url)
pulumi.export("workerDeployments", {name: d.metadata.name for name, d in workers.deployments.items()})
