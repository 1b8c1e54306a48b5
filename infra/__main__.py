"""The celery-platform program: read the stack config into CeleryPlatformArgs, create one CeleryPlatform, export."""

import pulumi

from celery_platform import CeleryPlatform, RedisBroker, SentinelBroker
from celery_platform.config.stack import load_stack_config

platform = CeleryPlatform("celery", load_stack_config())

pulumi.export("namespace", platform.namespace)
pulumi.export("secretName", platform.secret_name)
pulumi.export("brokerHost", platform.broker_host)
pulumi.export("brokerPort", platform.broker_port)
if isinstance(platform.broker, RedisBroker | SentinelBroker):  # an external broker's URL is not ours to hand out
    pulumi.export("brokerUrl", platform.broker_url)
pulumi.export("workerDeployments", platform.worker_deployments)
pulumi.export("taskRoutes", platform.task_routes)
