"""Another team's Python project: the celery-platform package's CeleryPlatform, from the generated SDK.

The engine tier writes ``settings-<stack>.json`` beside this file: ``args`` (the platform's inputs,
by their Python names), ``secretKeys`` (the inputs to pass as secrets) and, to write the objects as
YAML instead of applying them, ``renderYamlToDirectory``.
"""

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_celery_platform as celery
import pulumi_kubernetes as k8s

settings = json.loads((Path(__file__).parent / f"settings-{pulumi.get_stack()}.json").read_text())
args: dict[str, Any] = dict(settings["args"])
for key in settings["secretKeys"]:
    args[key] = pulumi.Output.secret(args[key])

providers = {}
if settings.get("renderYamlToDirectory"):
    providers["kubernetes"] = k8s.Provider("render", render_yaml_to_directory=settings["renderYamlToDirectory"])

platform = celery.CeleryPlatform("celery", opts=pulumi.ResourceOptions(providers=providers), **args)

pulumi.export("namespace", platform.namespace)
pulumi.export("secretName", platform.secret_name)
pulumi.export("brokerHost", platform.broker_host)
pulumi.export("brokerPort", platform.broker_port)
pulumi.export("brokerUrl", platform.broker_url)
pulumi.export("workerDeployments", platform.worker_deployments)
