"""Pod settings that fit the platform into a real cluster: identity, pull secrets, placement, extra env and volumes.

``PodSettings`` is set platform-wide, and a pool or beat may override it. Every field left ``None``
inherits; a field that an override sets replaces the platform's value as a whole (a pool's ``env``
is the pool's whole extra env, not an addition), so what a pod gets never depends on merge rules.
Everything here is plain data and pure functions: the pod-spec builders call ``apply_to_pod``.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery_platform.config.affinity import check_affinity
from celery_platform.config.env import EnvFrom, EnvVar
from celery_platform.config.placement import DEFAULT_SPREAD, SpreadConstraint, Toleration, check_spread
from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import (
    check_annotations,
    check_labels,
    check_string_tuple,
    check_subdomain,
)
from celery_platform.config.volumes import (
    HOOKS_MOUNT_PATH,
    Volume,
    VolumeMount,
    kubelet_path,
)


@args_schema
@dataclass(frozen=True, kw_only=True)
class ServiceAccount:
    """The pods' Kubernetes identity: one we create (with the IAM binding's annotations) or an existing one."""

    name: str = ""
    """Its name; with ``create``, empty means the component's name. Default: ``""`` (the namespace's default)."""
    create: bool = False
    """Create the ServiceAccount (IRSA, GKE or Azure Workload Identity annotate it). Default: ``False``."""
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Annotations of the ServiceAccount we create, e.g. ``eks.amazonaws.com/role-arn``. Default: none."""
    automount_token: bool = False
    """Mount the API token into the pods (a cloud SDK that exchanges it needs this). Default: ``False``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems: the name, annotations only on one we create, no token of the default account."""
        problems = check_subdomain(f"{field}.name", self.name) if self.name else []
        if self.annotations and not self.create:
            problems.append(
                Problem(
                    f"{field}.annotations",
                    "only a ServiceAccount we create gets annotations",
                    shown(sorted(self.annotations)),
                    "create: true, or annotate the existing account where it is defined",
                )
            )
        problems += check_annotations(f"{field}.annotations", self.annotations)
        if self.automount_token and not (self.name or self.create):
            problems.append(
                Problem(
                    f"{field}.automountToken",
                    "would mount the namespace's default ServiceAccount token",
                    "true with no name",
                    "a name or create: true",
                )
            )
        return problems

    def resolved_name(self, default: str) -> str:
        """Return the account's name, ``default`` for one we create without a name."""
        return self.name or (default if self.create else "")


@args_schema
@dataclass(frozen=True, kw_only=True)
class PodSettings:
    """What fits Celery pods into a cluster. ``None`` inherits the platform's value; a set field replaces it."""

    service_account: ServiceAccount | None = None
    """Identity and API token. Default: the namespace's default account, no token mounted."""
    image_pull_secrets: tuple[str, ...] | None = None
    """Existing ``kubernetes.io/dockerconfigjson`` Secrets for a private registry. Default: none."""
    node_selector: Mapping[str, str] | None = None
    """Node labels the pods require. Default: none."""
    tolerations: tuple[Toleration, ...] | None = None
    """Taints the pods tolerate (a dedicated node pool). Default: none."""
    affinity: Mapping[str, Any] | None = None
    """Kubernetes ``affinity`` (nodeAffinity, podAffinity, podAntiAffinity), as the API takes it, checked whole
    by the API server's rules; a key the program does not check (``matchLabelKeys``, ``mismatchLabelKeys``) is
    refused. Default: none."""
    priority_class_name: str | None = None
    """An existing PriorityClass. Default: none (the cluster's default priority)."""
    topology_spread: tuple[SpreadConstraint, ...] | None = None
    """Spread constraints over the pool's own pods; ``[]`` turns spreading off.
    Default: hostname and zone, ``ScheduleAnyway``, for worker pools (beat is one pod)."""
    annotations: Mapping[str, str] | None = None
    """Pod annotations. Default: none."""
    labels: Mapping[str, str] | None = None
    """Extra pod labels; the ``app.kubernetes.io/*`` labels that the platform selects by cannot be
    overridden. Default: none."""
    env: tuple[EnvVar, ...] | None = None
    """Extra env vars of the Celery container; names the platform sets are refused. Default: none."""
    env_from: tuple[EnvFrom, ...] | None = None
    """Whole Secrets or ConfigMaps as env vars of the Celery container. Default: none."""
    volumes: tuple[Volume, ...] | None = None
    """Extra volumes. Default: none."""
    volume_mounts: tuple[VolumeMount, ...] | None = None
    """Mounts of the extra volumes into the Celery container. Default: none."""
    python_path: tuple[str, ...] | None = None
    """The image's own PYTHONPATH entries; the hooks directory is appended, never put in their place.
    Default: none (the image sets no PYTHONPATH)."""

    def merged(self, override: PodSettings | None) -> PodSettings:
        """Return these settings with every field that ``override`` sets replaced by its value."""
        if override is None:
            return self
        changes = {f.name: getattr(override, f.name) for f in dataclasses.fields(override)}
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the fields set here (references between them: ``validate_references``)."""
        problems: list[Problem] = []
        if self.service_account is not None:
            problems += self.service_account.validate(f"{field}.serviceAccount")
        if self.image_pull_secrets is not None:
            problems += check_string_tuple(f"{field}.imagePullSecrets", self.image_pull_secrets)
            for i, name in enumerate(self.image_pull_secrets):
                problems += check_subdomain(f"{field}.imagePullSecrets[{i}]", str(name))
        problems += check_labels(f"{field}.nodeSelector", self.node_selector or {})
        for i, toleration in enumerate(self.tolerations or ()):
            problems += toleration.validate(f"{field}.tolerations[{i}]")
        if self.affinity is not None:
            problems += check_affinity(f"{field}.affinity", self.affinity)
        if self.priority_class_name:  # "" is none, as the API server takes it
            problems += check_subdomain(f"{field}.priorityClassName", self.priority_class_name)
            if self.priority_class_name.startswith("system-"):
                problems.append(
                    Problem(
                        f"{field}.priorityClassName",
                        "system- priority classes are reserved for cluster components",
                        shown(self.priority_class_name),
                        "a PriorityClass of your own",
                    )
                )
        problems += check_spread(f"{field}.topologySpread", self.topology_spread or ())
        problems += check_annotations(f"{field}.annotations", self.annotations or {})
        problems += check_labels(f"{field}.labels", self.labels or {})
        for key in sorted(set(self.labels or {}) & set(OWN_LABELS)):
            problems.append(
                Problem(
                    f"{field}.labels.{key}",
                    "is a label the platform sets: it selects the pods and admits them to the broker, "
                    "so it cannot be overridden",
                    shown(key),
                    "a key outside app.kubernetes.io/{name,instance,component,part-of,managed-by}",
                )
            )
        problems += _unique(f"{field}.env", [e.name for e in self.env or ()])
        for i, env in enumerate(self.env or ()):
            problems += env.validate(f"{field}.env[{i}]")
        for i, source in enumerate(self.env_from or ()):
            problems += source.validate(f"{field}.envFrom[{i}]")
        problems += _unique(f"{field}.volumes", [v.name for v in self.volumes or ()])
        for i, volume in enumerate(self.volumes or ()):
            problems += volume.validate(f"{field}.volumes[{i}]")
        mounted = [kubelet_path(str(m.mount_path)) for m in self.volume_mounts or ()]
        problems += _unique(f"{field}.volumeMounts", mounted)
        for i, mount in enumerate(self.volume_mounts or ()):
            problems += mount.validate(f"{field}.volumeMounts[{i}]")
        for i, entry in enumerate(self.python_path or ()):
            entry = str(entry)
            if not posixpath.isabs(entry) or ":" in entry:
                problems.append(
                    Problem(f"{field}.pythonPath[{i}]", "not an absolute path without ':'", shown(entry), "e.g. /app")
                )
            elif entry.rstrip("/") == HOOKS_MOUNT_PATH:
                problems.append(
                    Problem(
                        f"{field}.pythonPath[{i}]",
                        "is the hooks directory, which is always added",
                        shown(entry),
                        "the image's own paths",
                    )
                )
        return problems

    def validate_references(self, field: str) -> list[Problem]:
        """Return every mount that names no volume of these settings."""
        names = {v.name for v in self.volumes or ()}
        return [
            Problem(f"{field}.volumeMounts[{i}].name", "names no volume", shown(m.name), f"one of {sorted(names)}")
            for i, m in enumerate(self.volume_mounts or ())
            if m.name not in names
        ]

    def memory_volume_bytes(self) -> int:
        """Return what the mounted memory-backed emptyDirs may take from the Celery container's memory."""
        mounted = {m.name for m in self.volume_mounts or ()}
        return sum(v.memory_bytes() for v in self.volumes or () if v.name in mounted)


def _unique(field: str, names: Sequence[str]) -> list[Problem]:
    twice = sorted({n for n in names if names.count(n) > 1})
    return [Problem(field, "used twice", shown(n), "unique names") for n in twice]


def apply_to_pod(
    pod_spec: dict[str, Any],
    settings: PodSettings,
    *,
    selector: Mapping[str, str] | None,
    service_account_default: str,
) -> dict[str, Any]:
    """Return ``pod_spec`` with the settings applied; the first container is the Celery container.

    ``selector`` is the workload's own label selector for spread constraints (None: no default spread).
    """
    spec = dict(pod_spec)
    account = settings.service_account or ServiceAccount()
    name = account.resolved_name(service_account_default)
    if name:
        spec["serviceAccountName"] = name
    spec["automountServiceAccountToken"] = account.automount_token
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [t.to_k8s() for t in settings.tolerations]
    if settings.affinity:
        spec["affinity"] = dict(settings.affinity)
    if settings.priority_class_name:
        spec["priorityClassName"] = settings.priority_class_name
    spread = settings.topology_spread if settings.topology_spread is not None else DEFAULT_SPREAD
    if selector and spread:
        spec["topologySpreadConstraints"] = [s.to_k8s(selector) for s in spread]
    if settings.volumes:
        spec["volumes"] = [*spec.get("volumes", []), *(v.to_k8s() for v in settings.volumes)]
    container = dict(spec["containers"][0])
    if settings.env:
        container["env"] = [*container.get("env", []), *(e.to_k8s() for e in settings.env)]
    if settings.env_from:
        container["envFrom"] = [e.to_k8s() for e in settings.env_from]
    if settings.volume_mounts:
        container["volumeMounts"] = [*container.get("volumeMounts", []), *(m.to_k8s() for m in settings.volume_mounts)]
    spec["containers"] = [container, *spec["containers"][1:]]
    return spec


def pod_metadata_extras(settings: PodSettings) -> tuple[dict[str, str], dict[str, str]]:
    """Return the pod template's extra (labels, annotations)."""
    return dict(settings.labels or {}), dict(settings.annotations or {})


# Labels the platform sets: name and instance select the pods, part-of admits them to the broker.
OWN_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
