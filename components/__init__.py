"""Reusable Pulumi components that deploy a production Celery platform to Kubernetes.

Compose them in your own stack, each with one frozen, keyword-only dataclass of arguments::

    from celery_platform import CeleryWorkers, CeleryWorkersArgs, PoolSpec, RedisBroker, RedisBrokerArgs

- ``PlatformNamespace`` (``NamespaceArgs``): a namespace with Pod Security ``restricted``, a
  LimitRange (``LimitRangeSpec``), a ResourceQuota (``QuotaSpec``) and default-deny NetworkPolicies.
- ``PlatformSecrets`` (``SecretsArgs``): generated Django, Fernet and Redis keys in one Secret.
- ``RedisBroker`` (``RedisBrokerArgs``, ``RedisSpec``): one Redis, its Services and the broker URL.
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

# Public name -> defining module. Imported on first use (PEP 562): `import celery_platform.quantities`
# or the hooks module must not pull in pulumi, pydantic and the Kubernetes SDK.
_EXPORTS = {
    "PlatformNamespace": "celery_platform.namespace",
    "NamespaceArgs": "celery_platform.namespace",
    "LimitRangeSpec": "celery_platform.guardrails",
    "QuotaSpec": "celery_platform.guardrails",
    "Resources": "celery_platform.guardrails",
    "Ratio": "celery_platform.guardrails",
    "PlatformSecrets": "celery_platform.secrets",
    "SecretsArgs": "celery_platform.secrets",
    "RedisBroker": "celery_platform.redis",
    "RedisBrokerArgs": "celery_platform.redis",
    "RedisSpec": "celery_platform.specs",
    "CeleryWorkers": "celery_platform.workers",
    "CeleryWorkersArgs": "celery_platform.workers",
    "WorkloadSettings": "celery_platform.workers",
    "PoolSpec": "celery_platform.specs",
    "BeatSpec": "celery_platform.specs",
    "PodResources": "celery_platform.specs",
    "ValidationError": "celery_platform.validation",
    "Rotation": "celery_platform.secrets",
    "CeleryMonitoring": "celery_platform.monitoring",
    "CeleryMonitoringArgs": "celery_platform.monitoring",
    "MonitoringSpec": "celery_platform.monitoring_spec",
    "AlertThresholds": "celery_platform.monitoring_spec",
}

__all__ = [
    "AlertThresholds",
    "BeatSpec",
    "CeleryMonitoring",
    "CeleryMonitoringArgs",
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
    "ValidationError",
    "WorkloadSettings",
    "__version__",
]

if TYPE_CHECKING:
    from celery_platform.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
    from celery_platform.monitoring import CeleryMonitoring, CeleryMonitoringArgs
    from celery_platform.monitoring_spec import AlertThresholds, MonitoringSpec
    from celery_platform.namespace import NamespaceArgs, PlatformNamespace
    from celery_platform.redis import RedisBroker, RedisBrokerArgs
    from celery_platform.secrets import PlatformSecrets, Rotation, SecretsArgs
    from celery_platform.specs import BeatSpec, PodResources, PoolSpec, RedisSpec
    from celery_platform.validation import ValidationError
    from celery_platform.workers import CeleryWorkers, CeleryWorkersArgs, WorkloadSettings


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
