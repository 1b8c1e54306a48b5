"""Reusable Pulumi components that deploy a production Celery platform to Kubernetes.

Compose them in your own stack, each with one frozen, keyword-only dataclass of arguments::

    from components import CeleryWorkers, CeleryWorkersArgs, PoolSpec, RedisBroker, RedisBrokerArgs

- ``PlatformNamespace`` (``NamespaceArgs``): a namespace with Pod Security ``restricted``, a
  LimitRange (``LimitRangeSpec``), a ResourceQuota (``QuotaSpec``) and default-deny NetworkPolicies.
- ``PlatformSecrets`` (``SecretsArgs``): generated Django, Fernet and Redis keys in one Secret.
- ``RedisBroker`` (``RedisBrokerArgs``, ``RedisSpec``): one Redis, its Services and the broker URL.
- ``CeleryWorkers`` (``CeleryWorkersArgs``, ``WorkloadSettings``, ``PoolSpec``, ``BeatSpec``): one
  Deployment per worker pool and a single beat.

Every component validates its arguments before registering anything and raises one
``ValidationError`` that lists every problem. Field docstrings give each default.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> defining module. Imported on first use (PEP 562): `import components.quantities`
# or the hooks module must not pull in pulumi, pydantic and the Kubernetes SDK.
_EXPORTS = {
    "PlatformNamespace": "components.namespace",
    "NamespaceArgs": "components.namespace",
    "LimitRangeSpec": "components.guardrails",
    "QuotaSpec": "components.guardrails",
    "Resources": "components.guardrails",
    "Ratio": "components.guardrails",
    "PlatformSecrets": "components.secrets",
    "SecretsArgs": "components.secrets",
    "RedisBroker": "components.redis",
    "RedisBrokerArgs": "components.redis",
    "RedisSpec": "components.workloads",
    "CeleryWorkers": "components.workers",
    "CeleryWorkersArgs": "components.workers",
    "WorkloadSettings": "components.workers",
    "PoolSpec": "components.workloads",
    "BeatSpec": "components.workloads",
    "PodResources": "components.workloads",
    "ValidationError": "components.validation",
}

__all__ = [
    "BeatSpec",
    "CeleryWorkers",
    "CeleryWorkersArgs",
    "LimitRangeSpec",
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
    "SecretsArgs",
    "ValidationError",
    "WorkloadSettings",
    "__version__",
]

if TYPE_CHECKING:
    from components.guardrails import LimitRangeSpec, QuotaSpec, Ratio, Resources
    from components.namespace import NamespaceArgs, PlatformNamespace
    from components.redis import RedisBroker, RedisBrokerArgs
    from components.secrets import PlatformSecrets, SecretsArgs
    from components.validation import ValidationError
    from components.workers import CeleryWorkers, CeleryWorkersArgs, WorkloadSettings
    from components.workloads import BeatSpec, PodResources, PoolSpec, RedisSpec


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'components' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
