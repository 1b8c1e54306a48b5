"""Extra volumes and their mounts, kept clear of the platform's own (/tmp, the hooks, the broker CA)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import QuantityError, parse_memory
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import check_dns_label, check_memory, check_subdomain

TMP_MOUNT = "/tmp"
# Where the probes' hooks module is mounted (PYTHONPATH ends with it).
HOOKS_MOUNT_PATH = "/etc/celery-platform/hooks"
BROKER_CA_MOUNT = "/etc/celery-platform/broker-ca"
# Volumes the platform itself adds to Celery pods; an extra volume may not reuse their names.
OWN_VOLUMES = ("tmp", "hooks", "broker-ca")
# Paths whose mounts the platform owns: /tmp holds the heartbeat, ready file and beat's schedule.
OWN_MOUNTS = (TMP_MOUNT, HOOKS_MOUNT_PATH, BROKER_CA_MOUNT)


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
        problems = check_dns_label(f"{field}.name", self.name)
        if not problems and self.name in OWN_VOLUMES:
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
    """Absolute path; ``/tmp`` and the hooks directory, and anything over or under them, are refused, however
    spelled (``//tmp`` and ``/tmp/`` are ``/tmp`` to the kubelet). Required."""
    read_only: bool = True
    """Mount read-only. Default: ``True``."""
    sub_path: str = ""
    """Mount only this path inside the volume. Default: ``""`` (all of it)."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the mount path, judged where the kubelet mounts it."""
        path = self.mount_path
        if not isinstance(path, str) or not posixpath.isabs(path) or ":" in path:
            return [Problem(f"{field}.mountPath", "not an absolute path", shown(path), "e.g. /etc/smtp")]
        seen = kubelet_path(path)
        problems = []
        if seen != (path.rstrip("/") or "/"):
            problems.append(
                Problem(f"{field}.mountPath", "not a normalised absolute path", shown(path), f"e.g. {seen}")
            )
        for own in OWN_MOUNTS:
            if _overlaps(seen, own):
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


def kubelet_path(path: str) -> str:
    """Return where the kubelet mounts an absolute ``path``: ``//tmp``, ``/tmp/`` and ``/./tmp`` are ``/tmp``.

    ``posixpath.normpath`` keeps a leading ``//`` (POSIX leaves its meaning open); on Linux it is ``/``.
    """
    return "/" + posixpath.normpath(path).lstrip("/")


def _overlaps(path: str, own: str) -> bool:
    path, own = path.rstrip("/") or "/", own.rstrip("/")
    return path == own or own.startswith(path.rstrip("/") + "/") or path.startswith(own + "/")
