"""Extra env of the Celery container: single vars and whole Secrets or ConfigMaps, and what looks like a secret."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import check_config_map_key, check_env_var_name, check_subdomain

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
    return upper.endswith(("URL", "URI")) and bool(words & _CONNECTION_WORDS)


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
        return problems + check_config_map_key(f"{field}.key", self.key)

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
        problems = check_env_var_name(f"{field}.name", self.name)
        if not problems and self.name in PLATFORM_ENV:
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
        if self.prefix:
            problems += check_env_var_name(f"{field}.prefix", self.prefix, "env var prefix")
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
    "REMAP_SIGTERM": "a pool's shutdown (requeue)",
    "CELERY_PLATFORM_SOFT_SHUTDOWN_SECONDS": "a pool's softShutdownSeconds (requeue)",
    "CELERY_PLATFORM_TASK_ROUTES": "taskRoutes",
}
