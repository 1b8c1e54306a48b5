"""What a platform needs from its cluster before anything is applied: CRDs, and the Secrets and ConfigMaps it names.

Pure functions over :class:`CeleryPlatformArgs`; :mod:`celery_platform.resources.preflight` looks them
up in the cluster during preview (and up), refuses on a missing CRD and warns on a missing object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery_platform.config.autoscaling import API_VERSION as KEDA_API_VERSION
from celery_platform.config.autoscaling import is_autoscaled
from celery_platform.config.env import EnvFrom, KeyRef
from celery_platform.config.platform import camel
from celery_platform.config.volumes import Volume

if TYPE_CHECKING:
    from celery_platform.config.platform import CeleryPlatformArgs

__all__ = ["MONITORING_API_VERSION", "NeededCrd", "Reference", "needed_crds", "references"]

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
KEDA_INSTALL = (
    "install KEDA (https://keda.sh/docs/latest/deploy/, e.g. `helm install keda kedacore/keda "
    "--namespace keda --create-namespace`), or turn autoscaling off"
)
OPERATOR_INSTALL = (
    "install the Prometheus Operator, or only its CRDs (e.g. `helm install prometheus-operator-crds "
    "prometheus-community/prometheus-operator-crds`), or set monitoring.prometheusOperator: false"
)


@dataclass(frozen=True)
class NeededCrd:
    """A custom resource kind that the platform creates, why, and how to get it."""

    api_version: str
    plural: str
    kind: str
    needed_by: str
    install: str

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.split("/")[1]

    @property
    def name(self) -> str:
        """The CustomResourceDefinition's name, ``<plural>.<group>``."""
        return f"{self.plural}.{self.group}"


@dataclass(frozen=True)
class Reference:
    """An existing Secret or ConfigMap that a setting names, and the setting (as the stack config spells it)."""

    kind: str
    name: str
    field: str


def needed_crds(args: CeleryPlatformArgs) -> list[NeededCrd]:
    """Return the custom resource kinds that this platform creates, in apply order."""
    needed: list[NeededCrd] = []
    scaled = [i for i, pool in enumerate(args.pools) if is_autoscaled(pool)]
    if scaled:
        by = ", ".join(f"pools[{i}].autoscaling" for i in scaled)
        needed += [
            NeededCrd(KEDA_API_VERSION, "triggerauthentications", "TriggerAuthentication", by, KEDA_INSTALL),
            NeededCrd(KEDA_API_VERSION, "scaledobjects", "ScaledObject", by, KEDA_INSTALL),
        ]
    if args.monitoring.enabled and args.monitoring.prometheus_operator:
        by = "monitoring.prometheusOperator"
        needed += [
            NeededCrd(MONITORING_API_VERSION, "servicemonitors", "ServiceMonitor", by, OPERATOR_INSTALL),
            NeededCrd(MONITORING_API_VERSION, "prometheusrules", "PrometheusRule", by, OPERATOR_INSTALL),
        ]
    return needed


def references(args: CeleryPlatformArgs) -> list[Reference]:
    """Return every existing Secret and ConfigMap that a setting names and a pod needs to start.

    A reference marked ``optional`` is left out: Kubernetes starts the pod without it.
    """
    found: list[Reference] = []
    for f in dataclasses.fields(args):
        if f.metadata.get("secret") or f.metadata.get("schema") is False:
            continue
        found += _walk(getattr(args, f.name), camel(f.name))
    return found


def _walk(value: Any, path: str) -> Iterator[Reference]:
    if isinstance(value, KeyRef):
        if not value.optional:
            # caSecret, secretKeyRef, urlSecret...: the setting's name says which kind it reads.
            last = path.rsplit(".", 1)[-1]
            yield Reference("ConfigMap" if "configMap" in last else "Secret", value.name, path)
    elif isinstance(value, EnvFrom | Volume):
        if not getattr(value, "optional", False):
            if value.secret:
                yield Reference("Secret", value.secret, f"{path}.secret")
            if value.config_map:
                yield Reference("ConfigMap", value.config_map, f"{path}.configMap")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name == "image_pull_secrets" and item:
                yield from (Reference("Secret", n, f"{path}.imagePullSecrets[{i}]") for i, n in enumerate(item))
            else:
                yield from _walk(item, f"{path}.{camel(f.name)}")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
