"""Cross-resource rules of the policy pack about autoscalers (HPA and KEDA ScaledObject).

Beat is never autoscaled; an autoscaled workload leaves spec.replicas to its autoscaler; a KEDA
trigger reads its credentials from a TriggerAuthentication, never a literal. The pod-spec rules and the
prop readers they share are in celery_guardrails; like it, nothing here builds a PolicyPack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery_guardrails import _get, _has, _seq, runs_celery_beat, workload_of
from pulumi_policy.proxy import UnknownValueError

_AUTOSCALER_KINDS = {("autoscaling", "HorizontalPodAutoscaler"), ("keda.sh", "ScaledObject")}


def autoscaled_beat_violations(resources: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[int, str]]:
    """(index of the autoscaler, message) for every HPA or KEDA ScaledObject that targets a beat workload.

    Targets match on kind and metadata.name, and on metadata.namespace when both sides set one.
    KEDA's scaleTargetRef.kind defaults to Deployment.
    """
    beats: list[tuple[str, str, str | None]] = []
    for resource_type, props in resources:
        workload = workload_of(resource_type, props)
        if workload is not None and runs_celery_beat(workload):
            name = _get(props, "metadata", "name")
            if isinstance(name, str):
                beats.append((workload.kind, name, _get(props, "metadata", "namespace")))
    violations: list[tuple[int, str]] = []
    for target in _scaled_targets(resources):
        for kind, name, beat_namespace in beats:
            if target.matches(kind, name, beat_namespace):
                message = (
                    f"{target.autoscaler} spec.scaleTargetRef targets {kind} {name!r}, which runs celery beat; "
                    "beat must never be autoscaled: remove the autoscaler"
                )
                violations.append((target.index, message))
    return violations


@dataclass(frozen=True)
class ScaleTarget:
    """What an HPA or a KEDA ScaledObject scales: kind, name and namespace, and which autoscaler it is."""

    index: int
    autoscaler: str
    """The autoscaler's kind (``HorizontalPodAutoscaler``, ``ScaledObject``)."""
    label: str
    kind: str
    name: str
    namespace: Any

    def matches(self, kind: str, name: Any, namespace: Any) -> bool:
        """True for that workload; namespaces are compared only when both sides set one."""
        same_namespace = namespace is None or self.namespace is None or namespace == self.namespace
        return (kind, name) == (self.kind, self.name) and same_namespace


def _scaled_targets(resources: Sequence[tuple[str, Mapping[str, Any]]]) -> list[ScaleTarget]:
    """The target of every HPA and KEDA ScaledObject (KEDA's scaleTargetRef.kind defaults to Deployment)."""
    targets = []
    for index, (resource_type, props) in enumerate(resources):
        parts = resource_type.split(":")
        if len(parts) != 3 or (parts[1].split("/")[0], parts[2]) not in _AUTOSCALER_KINDS:
            continue
        kind = _get(props, "spec", "scaleTargetRef", "kind") or "Deployment"
        targets.append(
            ScaleTarget(
                index=index,
                autoscaler=parts[2],
                label=f"{parts[2]} {_get(props, 'metadata', 'name')!r}",
                kind=kind,
                name=_get(props, "spec", "scaleTargetRef", "name"),
                namespace=_get(props, "metadata", "namespace"),
            )
        )
    return targets


class ReplicasOwnership:
    """Fed each resource's inputs in registration order: finds autoscaled workloads that set spec.replicas.

    The autoscaler's HPA owns the field: a value in the program is a server-side-apply conflict with
    it on every `pulumi up` (pulumi-kubernetes #2491), or silently undoes each scaling. Only inputs say
    whether the program set it (the API server defaults it), and only resource policies see inputs; so
    this remembers what it saw, and reports on whichever of the workload and its autoscaler comes second.
    """

    def __init__(self) -> None:
        self.targets: list[ScaleTarget] = []
        self.with_replicas: list[tuple[str, Any, Any]] = []

    def see(self, resource_type: str, props: Mapping[str, Any]) -> list[str]:
        """The violations that this resource completes, given everything seen before it."""
        found = _scaled_targets([(resource_type, props)])
        if found:
            target = found[0]
            self.targets.append(target)
            return [
                _replicas_message(kind, name, target.label)
                for kind, name, namespace in self.with_replicas
                if target.matches(kind, name, namespace)
            ]
        workload = workload_of(resource_type, props)
        spec = _get(props, "spec")
        if workload is None or not isinstance(spec, Mapping) or not _has(spec, "replicas"):
            return []
        name, namespace = _get(props, "metadata", "name"), _get(props, "metadata", "namespace")
        self.with_replicas.append((workload.kind, name, namespace))
        return [
            _replicas_message(workload.kind, name, t.label)
            for t in self.targets
            if t.matches(workload.kind, name, namespace)
        ]


def _replicas_message(kind: str, name: Any, autoscaler: str) -> str:
    return (
        f"{kind} {name!r} sets spec.replicas, but {autoscaler} scales it: leave spec.replicas out so that the "
        "autoscaler owns it (a value is a field-manager conflict on every update)"
    )


def autoscaled_replicas_violations(resources: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[int, str]]:
    """(index, message) for each resource, in order, that completes an autoscaled workload with spec.replicas."""
    ownership = ReplicasOwnership()
    return [(i, message) for i, (t, props) in enumerate(resources) for message in ownership.see(t, props)]


# Trigger metadata that would hold a credential as a literal. `...FromEnv` names an env var instead, and
# a TriggerAuthentication reads Secrets: both are fine.
_LITERAL_CREDENTIAL_PARAMS = {
    "password",
    "sentinelpassword",
    "passwd",
    "token",
    "apikey",
    "accesskey",
    "secretaccesskey",
    "connection",
    "connectionstring",
    "cert",
    "key",
    "keypassword",
    "ca",
}
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]+@")


def validate_scaler_credentials(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """KEDA ScaledObjects and ScaledJobs read credentials from a TriggerAuthentication, never a literal."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[1].split("/")[0] != "keda.sh" or parts[2] not in ("ScaledObject", "ScaledJob"):
        return []
    violations = []
    for index, trigger in enumerate(_seq(_get(props, "spec", "triggers"))):
        metadata = _get(trigger, "metadata")
        if not isinstance(metadata, Mapping):
            continue
        for key in metadata:
            where = f"spec.triggers[{index}].metadata.{key}"
            if str(key).lower() in _LITERAL_CREDENTIAL_PARAMS:
                violations.append(
                    f"{where} holds a credential as a literal; read it from a Secret with a TriggerAuthentication "
                    "(authenticationRef)"
                )
                continue
            try:
                value = metadata[key]
            except UnknownValueError:
                continue
            if isinstance(value, str) and _URL_CREDENTIALS.search(value):
                violations.append(
                    f"{where} is a URL with a password in it; give the host alone and the password through a "
                    "TriggerAuthentication (authenticationRef)"
                )
    return violations
