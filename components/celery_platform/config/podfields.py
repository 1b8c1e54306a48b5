"""The parts of PodSettings: references to existing objects, env, tolerations, spread, volumes and mounts.

Each part validates itself and renders its Kubernetes form; ``celery_platform.config.podsettings`` puts them together.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery_platform.builders.probes import HOOKS_MOUNT_PATH
from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import QuantityError, parse_memory
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import check_label_key, check_memory, check_subdomain

TMP_MOUNT = "/tmp"
BROKER_CA_MOUNT = "/etc/celery-platform/broker-ca"
# Volumes the platform itself adds to Celery pods; an extra volume may not reuse their names.
OWN_VOLUMES = ("tmp", "hooks", "broker-ca")
# Paths whose mounts the platform owns: /tmp holds the heartbeat, ready file and beat's schedule.
OWN_MOUNTS = (TMP_MOUNT, HOOKS_MOUNT_PATH, BROKER_CA_MOUNT)
# Labels the platform sets: name and instance select the pods, part-of admits them to the broker.
OWN_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
# Every env var the platform sets in a Celery container, and where its value comes from.
PLATFORM_ENV: dict[str, str] = {
    "CELERY_BROKER_URL": "the broker's URL Secret",
    "CELERY_PLATFORM_BROKER_URL": "the broker's URL Secret (TLS)",
    "CELERY_BROKER_CA_FILE": "the broker's CA",
    "SECRET_KEY": "the platform Secret",
    "FIELD_ENCRYPTION_KEY": "the platform Secret",
    "DATABASE_URL": "the platform Secret",
    "SENTRY_DSN": "the platform Secret",
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": "longestTaskSeconds",
    "CELERY_TASK_ACKS_LATE": "the platform (always true)",
    "CELERY_WORKER_PREFETCH_MULTIPLIER": "the platform (always 1)",
    "PYTHONUNBUFFERED": "the platform (always 1)",
    "PYTHONPATH": "pythonPath plus the hooks directory",
    "CELERY_PLATFORM_HEARTBEAT_FILE": "the probes",
    "CELERY_PLATFORM_READY_FILE": "the probes",
    "CELERY_PLATFORM_APP": "celeryApp (beat)",
}
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
SPREAD_WHEN = ("ScheduleAnyway", "DoNotSchedule")
AFFINITY_KINDS = ("nodeAffinity", "podAffinity", "podAntiAffinity")
DEFAULT_SPREAD_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")

# The API server's env var name rule (IsEnvVarName); fullmatch, since `$` also matches before a final newline.
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
# Mirrors looks_secret() of the policy pack (policy/celery_guardrails.py), so a literal that the pack
# would refuse at preview is refused here first; tests/unit keep the two in agreement.
_SECRET_SUBSTRINGS = ("SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL", "APIKEY", "PRIVATE_KEY")
_SECRET_WORDS = {"KEY", "DSN", "PASS"}
_CONNECTION_WORDS = {
    *("DATABASE", "DB", "BROKER", "REDIS", "AMQP", "CACHE", "BACKEND", "MONGO", "MONGODB"),
    *("POSTGRES", "POSTGRESQL", "MYSQL", "SENTRY"),
}


def looks_secret(name: str) -> bool:
    """Return whether an env var name reads as a secret (SECRET_KEY, SMTP_PASSWORD, CACHE_URL, ...)."""
    upper = name.upper()
    words = set(re.split(r"[_.\-]+", upper))
    if any(part in upper for part in _SECRET_SUBSTRINGS) or words & _SECRET_WORDS:
        return True
    if upper.endswith("RESULT_BACKEND") or upper.endswith("CONNECTION_STRING"):
        return True
    return bool(re.search(r"(URL|URI)$", upper)) and bool(words & _CONNECTION_WORDS)


@args_schema
@dataclass(frozen=True, kw_only=True)
class KeyRef:
    """One key of an existing Secret or ConfigMap."""

    name: str
    """The Secret's or ConfigMap's name. Required."""
    key: str
    """The key inside it. Required."""
    optional: bool = False
    """Start the pod even when the object or key is missing. Default: ``False``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the reference."""
        problems = check_subdomain(f"{field}.name", self.name)
        if not re.fullmatch(r"[-._a-zA-Z0-9]+", self.key):
            problems.append(
                Problem(f"{field}.key", "not a valid key", shown(self.key), "letters, digits, '-', '_', '.'")
            )
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the Kubernetes key selector."""
        ref: dict[str, Any] = {"name": self.name, "key": self.key}
        if self.optional:
            ref["optional"] = True
        return ref


@args_schema
@dataclass(frozen=True, kw_only=True)
class EnvVar:
    """One extra env var: a plain value, or a key of an existing Secret or ConfigMap."""

    name: str
    """The variable's name; one the platform sets is refused. Required."""
    value: str | None = None
    """A literal value; refused for a secret-looking name. Default: unset."""
    secret_key_ref: KeyRef | None = None
    """Read the value from an existing Secret. Default: unset."""
    config_map_key_ref: KeyRef | None = None
    """Read the value from an existing ConfigMap. Default: unset."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of this entry: its name, and exactly one source."""
        problems = []
        if not _ENV_NAME.fullmatch(self.name):
            problems.append(Problem(f"{field}.name", "not a valid env var name", shown(self.name), "e.g. SMTP_HOST"))
        elif self.name in PLATFORM_ENV:
            hint = "pythonPath" if self.name == "PYTHONPATH" else "another name"
            problems.append(
                Problem(
                    f"{field}.name",
                    f"collides with {self.name}, which the platform sets from {PLATFORM_ENV[self.name]}",
                    shown(self.name),
                    hint,
                )
            )
        sources = [s for s in (self.value, self.secret_key_ref, self.config_map_key_ref) if s is not None]
        if len(sources) != 1:
            problems.append(
                Problem(
                    field, "needs exactly one source", f"{len(sources)}", "one of value, secretKeyRef, configMapKeyRef"
                )
            )
        if self.value is not None and looks_secret(self.name):
            problems.append(
                Problem(f"{field}.value", "a secret-looking name with a literal value", "a literal", "secretKeyRef")
            )
        # A ConfigMap is no place for a credential either: it is readable by anyone who may read the namespace.
        if self.config_map_key_ref is not None and looks_secret(self.name):
            problems.append(
                Problem(
                    f"{field}.configMapKeyRef",
                    "a secret-looking name read from a ConfigMap",
                    "a ConfigMap key",
                    "secretKeyRef",
                )
            )
        for name, ref in (("secretKeyRef", self.secret_key_ref), ("configMapKeyRef", self.config_map_key_ref)):
            if ref is not None:
                problems += ref.validate(f"{field}.{name}")
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the container env entry."""
        if self.value is not None:
            return {"name": self.name, "value": self.value}
        if self.secret_key_ref is not None:
            return {"name": self.name, "valueFrom": {"secretKeyRef": self.secret_key_ref.to_k8s()}}
        assert self.config_map_key_ref is not None
        return {"name": self.name, "valueFrom": {"configMapKeyRef": self.config_map_key_ref.to_k8s()}}


@args_schema
@dataclass(frozen=True, kw_only=True)
class EnvFrom:
    """Every key of an existing Secret or ConfigMap as env vars.

    Kubernetes gives ``env`` precedence over ``envFrom``, so a key named like one the platform sets
    never replaces it.
    """

    secret: str = ""
    """The Secret's name. Default: ``""`` (set this or configMap)."""
    config_map: str = ""
    """The ConfigMap's name. Default: ``""`` (set this or secret)."""
    prefix: str = ""
    """Prepended to every key. Default: ``""``."""
    optional: bool = False
    """Start the pod even when the object is missing. Default: ``False``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems: exactly one source, a valid name and prefix."""
        problems = []
        if bool(self.secret) == bool(self.config_map):
            got = "both" if self.secret else "neither"
            problems.append(Problem(field, "needs exactly one source", got, "secret or configMap"))
        for name, value in (("secret", self.secret), ("configMap", self.config_map)):
            if value:
                problems += check_subdomain(f"{field}.{name}", value)
        if self.prefix and not _ENV_NAME.fullmatch(self.prefix):
            problems.append(Problem(f"{field}.prefix", "not a valid env var prefix", shown(self.prefix), "e.g. APP_"))
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the container envFrom entry."""
        kind, name = ("secretRef", self.secret) if self.secret else ("configMapRef", self.config_map)
        ref: dict[str, Any] = {"name": name}
        if self.optional:
            ref["optional"] = True
        entry: dict[str, Any] = {kind: ref}
        if self.prefix:
            entry["prefix"] = self.prefix
        return entry


@args_schema
@dataclass(frozen=True, kw_only=True)
class Toleration:
    """A toleration of a node taint (a dedicated node pool)."""

    key: str = ""
    """The taint's key; empty with ``Exists`` tolerates every taint. Default: ``""``."""
    operator: str = "Equal"
    """``Equal`` (key and value match) or ``Exists`` (key matches). Default: ``"Equal"``."""
    value: str = ""
    """The taint's value, with ``Equal``. Default: ``""``."""
    effect: str = ""
    """``NoSchedule``, ``PreferNoSchedule``, ``NoExecute``, or empty for all. Default: ``""``."""
    toleration_seconds: int | None = None
    """How long a ``NoExecute`` taint is tolerated. Default: forever."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems, as the API server would find them."""
        problems = []
        if self.operator not in TOLERATION_OPERATORS:
            problems.append(Problem(f"{field}.operator", "unknown operator", shown(self.operator), "Equal or Exists"))
        if self.operator == "Exists" and self.value:
            problems.append(Problem(f"{field}.value", "must be empty with Exists", shown(self.value), "''"))
        if not self.key and self.operator != "Exists":
            problems.append(Problem(f"{field}.key", "an empty key needs operator Exists", "''", "a taint key"))
        if self.key and not check_label_key(self.key):
            problems.append(Problem(f"{field}.key", "not a valid taint key", shown(self.key), "a label key"))
        if self.effect not in TAINT_EFFECTS:
            problems.append(
                Problem(f"{field}.effect", "unknown effect", shown(self.effect), " or ".join(TAINT_EFFECTS[1:]))
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            problems.append(
                Problem(f"{field}.tolerationSeconds", "applies only to NoExecute", shown(self.effect), "NoExecute")
            )
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the pod spec toleration."""
        out: dict[str, Any] = {"operator": self.operator}
        for name, value in (("key", self.key), ("value", self.value), ("effect", self.effect)):
            if value:
                out[name] = value
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


@args_schema
@dataclass(frozen=True, kw_only=True)
class SpreadConstraint:
    """A topology spread constraint; the platform adds the pool's own label selector."""

    topology_key: str
    """Node label to spread over, e.g. ``topology.kubernetes.io/zone``. Required."""
    max_skew: int = 1
    """Largest allowed difference of pods between two domains. Default: ``1``."""
    when_unsatisfiable: str = "ScheduleAnyway"
    """``ScheduleAnyway`` (a preference) or ``DoNotSchedule`` (a rule). Default: ``"ScheduleAnyway"``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the constraint."""
        problems = []
        if not check_label_key(self.topology_key):
            problems.append(
                Problem(f"{field}.topologyKey", "not a label key", shown(self.topology_key), "a node label")
            )
        if self.max_skew < 1:
            problems.append(Problem(f"{field}.maxSkew", "too small", shown(self.max_skew), "a whole number >= 1"))
        if self.when_unsatisfiable not in SPREAD_WHEN:
            problems.append(
                Problem(
                    f"{field}.whenUnsatisfiable", "unknown", shown(self.when_unsatisfiable), " or ".join(SPREAD_WHEN)
                )
            )
        return problems

    def to_k8s(self, selector: Mapping[str, str]) -> dict[str, Any]:
        """Return the pod spec constraint, selecting the pool's own pods."""
        return {
            "maxSkew": self.max_skew,
            "topologyKey": self.topology_key,
            "whenUnsatisfiable": self.when_unsatisfiable,
            "labelSelector": {"matchLabels": dict(selector)},
        }


# ScheduleAnyway: spreading is a preference; a one-node dev cluster must still schedule.
DEFAULT_SPREAD = tuple(SpreadConstraint(topology_key=key) for key in DEFAULT_SPREAD_KEYS)


@args_schema
@dataclass(frozen=True, kw_only=True)
class EmptyDir:
    """A scratch volume."""

    size_limit: str = ""
    """Largest size, e.g. ``256Mi``; required with medium ``Memory``. Default: ``""`` (no limit)."""
    medium: str = ""
    """``""`` (node disk) or ``Memory`` (tmpfs, counted against the container's memory limit). Default: ``""``."""


@args_schema
@dataclass(frozen=True, kw_only=True)
class Volume:
    """An extra volume: an existing Secret, ConfigMap or PersistentVolumeClaim, or an emptyDir."""

    name: str
    """Volume name (RFC 1123 label), referenced by volumeMounts. Required."""
    secret: str = ""
    """An existing Secret's name. Default: ``""``."""
    config_map: str = ""
    """An existing ConfigMap's name. Default: ``""``."""
    persistent_volume_claim: str = ""
    """An existing PersistentVolumeClaim's name. Default: ``""``."""
    empty_dir: EmptyDir | None = None
    """A scratch volume. Default: unset."""

    def sources(self) -> list[str]:
        """Return the names of the sources set."""
        named = {
            "secret": self.secret,
            "configMap": self.config_map,
            "persistentVolumeClaim": self.persistent_volume_claim,
        }
        return [k for k, v in named.items() if v] + (["emptyDir"] if self.empty_dir is not None else [])

    def memory_bytes(self) -> int:
        """Return what a memory-backed emptyDir may take from the memory limit (0 for anything else)."""
        if self.empty_dir is None or self.empty_dir.medium != "Memory" or not self.empty_dir.size_limit:
            return 0
        try:
            return int(parse_memory(self.empty_dir.size_limit))
        except QuantityError:
            return 0

    def validate(self, field: str) -> list[Problem]:
        """Return the problems: name, exactly one source, emptyDir sizes."""
        problems = []
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", self.name) or len(self.name) > 63:
            problems.append(Problem(f"{field}.name", "not a valid RFC 1123 label", shown(self.name), "e.g. smtp-ca"))
        elif self.name in OWN_VOLUMES:
            problems.append(
                Problem(
                    f"{field}.name",
                    "is a volume the platform adds",
                    shown(self.name),
                    f"not one of {list(OWN_VOLUMES)}",
                )
            )
        if len(self.sources()) != 1:
            problems.append(
                Problem(
                    field,
                    "needs exactly one source",
                    shown(self.sources()),
                    "one of secret, configMap, persistentVolumeClaim, emptyDir",
                )
            )
        for name, value in (("secret", self.secret), ("configMap", self.config_map)):
            if value:
                problems += check_subdomain(f"{field}.{name}", value)
        if self.persistent_volume_claim:
            problems += check_subdomain(f"{field}.persistentVolumeClaim", self.persistent_volume_claim)
        if self.empty_dir is not None:
            if self.empty_dir.medium not in ("", "Memory"):
                problems.append(
                    Problem(
                        f"{field}.emptyDir.medium", "unknown medium", shown(self.empty_dir.medium), "'' or 'Memory'"
                    )
                )
            if self.empty_dir.size_limit:
                problems += check_memory(f"{field}.emptyDir.sizeLimit", self.empty_dir.size_limit)
            elif self.empty_dir.medium == "Memory":
                problems.append(
                    Problem(
                        f"{field}.emptyDir.sizeLimit",
                        "a memory-backed emptyDir needs a size limit (its files count against the memory limit)",
                        "''",
                        "a quantity such as '64Mi'",
                    )
                )
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the pod spec volume."""
        if self.secret:
            return {"name": self.name, "secret": {"secretName": self.secret}}
        if self.config_map:
            return {"name": self.name, "configMap": {"name": self.config_map}}
        if self.persistent_volume_claim:
            return {"name": self.name, "persistentVolumeClaim": {"claimName": self.persistent_volume_claim}}
        assert self.empty_dir is not None
        empty: dict[str, Any] = {}
        if self.empty_dir.size_limit:
            empty["sizeLimit"] = self.empty_dir.size_limit
        if self.empty_dir.medium:
            empty["medium"] = self.empty_dir.medium
        return {"name": self.name, "emptyDir": empty}


@args_schema
@dataclass(frozen=True, kw_only=True)
class VolumeMount:
    """Where an extra volume appears in the Celery container."""

    name: str
    """The volume's name, from ``volumes``. Required."""
    mount_path: str
    """Absolute path; ``/tmp`` and the hooks directory, and anything over or under them, are refused. Required."""
    read_only: bool = True
    """Mount read-only. Default: ``True``."""
    sub_path: str = ""
    """Mount only this path inside the volume. Default: ``""`` (all of it)."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the mount path."""
        path = self.mount_path
        if not posixpath.isabs(path) or posixpath.normpath(path) != path.rstrip("/") or ":" in path:
            return [Problem(f"{field}.mountPath", "not a normalised absolute path", shown(path), "e.g. /etc/smtp")]
        problems = []
        for own in OWN_MOUNTS:
            if _overlaps(path, own):
                problems.append(
                    Problem(
                        f"{field}.mountPath",
                        f"overlaps {own}, which the platform mounts (heartbeat, ready file, schedule, hooks, CA)",
                        shown(path),
                        f"a path neither over nor under {own}",
                    )
                )
        if self.sub_path and (posixpath.isabs(self.sub_path) or ".." in self.sub_path.split("/")):
            problems.append(
                Problem(f"{field}.subPath", "must be relative, without '..'", shown(self.sub_path), "e.g. ca.crt")
            )
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the container volumeMount."""
        out: dict[str, Any] = {"name": self.name, "mountPath": self.mount_path, "readOnly": self.read_only}
        if self.sub_path:
            out["subPath"] = self.sub_path
        return out


def _overlaps(path: str, own: str) -> bool:
    path, own = path.rstrip("/") or "/", own.rstrip("/")
    return path == own or own.startswith(path.rstrip("/") + "/") or path.startswith(own + "/")
