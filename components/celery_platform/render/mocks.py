"""The render's mock engine: it records each Kubernetes object as the provider would get it, secrets hidden."""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi

SECRET_SIG = "4dabf18193072939515e22adb298388d"
PLACEHOLDER = "<secret>"
# Install order, as Helm applies kinds: guardrails before the pods they admit, config before its users.
KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "Pod",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    # Prometheus Operator objects last: they only describe how to watch what came before.
    "ServiceMonitor",
    "PrometheusRule",
]


CLUSTER_SCOPED = {"Namespace"}


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def _fake_random(name: str, length: int, alphabet: str) -> str:
    """A deterministic stand-in for a random value of ``length`` characters from ``alphabet``."""
    digest = b""
    counter = 0
    while len(digest) < length:
        digest += hashlib.sha512(f"{name}/{counter}".encode()).digest()
        counter += 1
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270"


def scrub(value: Any) -> Any:
    """Replace every secret in ``value`` by PLACEHOLDER (keys of a secret mapping stay visible)."""
    if _is_secret(value):
        inner = value.get("value")
        if isinstance(inner, dict):
            return {k: PLACEHOLDER for k in sorted(inner)}
        return PLACEHOLDER
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class RenderMocks(pulumi.runtime.Mocks):
    """The mock engine of the render: records Kubernetes inputs and answers as the providers would."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    resources: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    """Every stand-in random value handed out, so tests can prove none of them reaches the output."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = copy.deepcopy(dict(args.inputs))
        self.resources.append((args.typ, args.name, copy.deepcopy(inputs)))
        outputs = inputs
        if args.typ == "random:index/randomPassword:RandomPassword":
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            if inputs.get("special", True):
                alphabet += inputs.get("overrideSpecial", "!@#$%&*()-_=+[]{}<>:?")
            outputs = {**inputs, "result": _fake_random(args.name, int(inputs["length"]), alphabet)}
            self.generated.append(outputs["result"])
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = hashlib.shake_256(args.name.encode()).digest(int(inputs["length"]))
            outputs = {**inputs, "base64": base64.b64encode(raw).decode(), "hex": raw.hex()}
            self.generated += [outputs["base64"], outputs["hex"]]
        elif args.typ.startswith("kubernetes:"):
            metadata = dict(inputs.get("metadata") or {})
            # pulumi-kubernetes auto-names with a random suffix; ours is derived from the name.
            metadata.setdefault("name", f"{args.name}-{_suffix(args.name)}")
            if inputs.get("kind") not in CLUSTER_SCOPED:
                metadata.setdefault("namespace", "default")
            outputs = {**inputs, "metadata": metadata}
            self.objects.append(outputs)
        return f"{args.name}_id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def ordered(self) -> list[dict[str, Any]]:
        """Return the Kubernetes objects, scrubbed, in apply order (kind, then namespace and name)."""

        def rank(obj: dict[str, Any]) -> tuple[int, str, str]:
            kind = obj.get("kind", "")
            meta = obj["metadata"]
            order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
            return order, str(meta.get("namespace", "")), str(meta["name"])

        return [_ordered_keys(scrub(obj)) for obj in sorted(self.objects, key=rank)]


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _ordered_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Sort every mapping (the mock gives no fixed order); apiVersion, kind and metadata come first."""
    obj = _sorted(obj)
    head: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    return {**head, **{k: v for k, v in obj.items() if k not in head}}
