"""Reusable Pulumi components that deploy a production Celery platform to Kubernetes.

The whole platform is one component, with one frozen, keyword-only dataclass of arguments::

    from celery_platform import CeleryPlatform, CeleryPlatformArgs, PoolSpec

    CeleryPlatform("celery", CeleryPlatformArgs(image=..., pools=(PoolSpec(name="main", queues=("default",)),),
                                                database_url=pulumi.Output.secret(...)))

- ``CeleryPlatform`` (``CeleryPlatformArgs``): everything below, validated at once, with monitoring.

Its parts are components of their own, for stacks that compose them differently:

- ``PlatformNamespace`` (``NamespaceArgs``): a namespace with Pod Security ``restricted``, a
  LimitRange (``LimitRangeSpec``), a ResourceQuota (``QuotaSpec``) and default-deny NetworkPolicies.
- ``PlatformSecrets`` (``SecretsArgs``): generated Django, Fernet and Redis keys in one Secret.
- ``RedisBroker`` (``RedisBrokerArgs``, ``RedisSpec``): one Redis, its Services and the broker URL.
- ``SentinelBroker`` (``SentinelBrokerArgs``, ``SentinelSpec``): Redis as a primary and replicas that
  Sentinels fail over, for ``PlatformSecrets`` with ``holds_sentinel_password``.
- ``CeleryWorkers`` (``CeleryWorkersArgs``, ``WorkloadSettings``, ``PoolSpec``, ``BeatSpec``): one
  Deployment per worker pool and a single beat.
- ``CeleryMonitoring`` (``CeleryMonitoringArgs``, ``MonitoringSpec``, ``AlertThresholds``): the metrics
  exporter, a ServiceMonitor, a PrometheusRule and a Grafana dashboard.

Every component validates its arguments before registering anything and raises one
``ValidationError`` that lists every problem. Field docstrings give each default.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> defining module. Imported on first use (PEP 562): `import celery_platform.config.quantities`
# or the hooks module must not pull in pulumi, pydantic and the Kubernetes SDK.
_EXPORTS = {
    "CeleryPlatform": "celery_platform.resources.platform",
    "CeleryPlatformArgs": "celery_platform.config.platform",
    "PlatformNamespace": "celery_platform.resources.namespace",
    "NamespaceArgs": "celery_platform.resources.namespace",
    "LimitRangeSpec": "celery_platform.config.guardrails",
    "QuotaSpec": "celery_platform.config.guardrails",
    "Resources": "celery_platform.config.guardrails",
    "Ratio": "celery_platform.config.guardrails",
    "PlatformSecrets": "celery_platform.resources.secrets",
    "SecretsArgs": "celery_platform.resources.secrets",
    "RedisBroker": "celery_platform.resources.redis",
    "RedisBrokerArgs": "celery_platform.resources.redis",
    "RedisSpec": "celery_platform.config.specs",
    "SentinelBroker": "celery_platform.resources.sentinel",
    "SentinelBrokerArgs": "celery_platform.resources.sentinel",
    "SentinelSpec": "celery_platform.config.sentinel",
    "CeleryWorkers": "celery_platform.resources.workers",
    "CeleryWorkersArgs": "celery_platform.resources.workers",
    "WorkloadSettings": "celery_platform.config.workload",
    "PoolSpec": "celery_platform.config.specs",
    "BeatSpec": "celery_platform.config.specs",
    "PodResources": "celery_platform.config.specs",
    "ValidationError": "celery_platform.config.problems",
    "Rotation": "celery_platform.config.rotation",
    "CeleryMonitoring": "celery_platform.resources.monitoring",
    "CeleryMonitoringArgs": "celery_platform.resources.monitoring",
    "MonitoringSpec": "celery_platform.config.monitoring",
    "AlertThresholds": "celery_platform.config.monitoring",
}

__all__ = [
    "AlertThresholds",
    "BeatSpec",
    "CeleryMonitoring",
    "CeleryMonitoringArgs",
    "CeleryPlatform",
    "CeleryPlatformArgs",
    "CeleryWorkers",
    "CeleryWorkersArgs",
    "LimitRangeSpec",
    "MonitoringSpec",
    "NamespaceArgs",
    "PlatformNamespace",
    "PlatformSecrets",
    "PodResources",
    "PoolSpec",
    "QuotaSpec",
    "Ratio",
    "RedisBroker",
    "RedisBrokerArgs",
    "RedisSpec",
    "Resources",
    "Rotation",
    "SecretsArgs",
    "SentinelBroker",
    "SentinelBrokerArgs",
    "SentinelSpec",
    "ValidationError",
    "WorkloadSettings",
    "__version__",
]

if TYPE_CHECKING:
    from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
    from celery_platform.config.monitoring import AlertThresholds, MonitoringSpec
    from celery_platform.config.platform import CeleryPlatformArgs
    from celery_platform.config.problems import ValidationError
    from celery_platform.config.rotation import Rotation
    from celery_platform.config.sentinel import SentinelSpec
    from celery_platform.config.specs import BeatSpec, PodResources, PoolSpec, RedisSpec
    from celery_platform.config.workload import WorkloadSettings
    from celery_platform.resources.monitoring import CeleryMonitoring, CeleryMonitoringArgs
    from celery_platform.resources.namespace import NamespaceArgs, PlatformNamespace
    from celery_platform.resources.platform import CeleryPlatform
    from celery_platform.resources.redis import RedisBroker, RedisBrokerArgs
    from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
    from celery_platform.resources.sentinel import SentinelBroker, SentinelBrokerArgs
    from celery_platform.resources.workers import CeleryWorkers, CeleryWorkersArgs


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'celery_platform' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
