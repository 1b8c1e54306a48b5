"""Settings read only from the environment variables that the platform provides.

Every problem is collected and reported in one error, the way a real Django project fails at
settings import, so that a missing or malformed value shows up as one sentence and not a traceback.
"""

from __future__ import annotations

import binascii
import logging
import os
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

QUEUES = ("default", "high", "low", "email", "reports", "media", "webhooks", "maintenance")


class SettingsError(RuntimeError):
    """The environment does not satisfy the sample app's contract."""


@dataclass(frozen=True)
class Settings:
    """Validated settings of the sample app."""

    broker_url: str
    result_backend: str
    visibility_timeout_seconds: int
    task_acks_late: bool
    worker_prefetch_multiplier: int
    periodic_seconds: float
    sentry_dsn: str | None


def _parse_bool(name: str, default: bool, problems: list[str]) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    problems.append(f"{name}: not a boolean (got {raw!r}, expected 'true' or 'false')")
    return default


def _parse_number(name: str, default: float, minimum: float, problems: list[str]) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}: not a number (got {raw!r})")
        return default
    if value < minimum:
        problems.append(f"{name}: too small (got {raw!r}, expected at least {minimum:g})")
    return value


def _check_secret_key(problems: list[str]) -> None:
    # The same rules as Django's security.W009 check, made fatal.
    key = os.environ.get("SECRET_KEY", "")
    if not key:
        problems.append("SECRET_KEY: missing (expected at least 50 characters)")
    elif len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-"):
        problems.append(
            f"SECRET_KEY: too weak (got {len(key)} characters, {len(set(key))} unique; expected at "
            "least 50 characters, at least 5 unique, no 'django-insecure-' prefix)"
        )


def _check_field_encryption_key(problems: list[str]) -> None:
    key = os.environ.get("FIELD_ENCRYPTION_KEY", "")
    if not key:
        problems.append("FIELD_ENCRYPTION_KEY: missing (expected a Fernet key)")
        return
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        # Without cryptography the app could not use the key anyway; check its shape only.
        try:
            valid = len(urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
    else:
        try:
            Fernet(key.encode())
            valid = True
        except (binascii.Error, ValueError):
            valid = False
    if not valid:
        problems.append(
            f"FIELD_ENCRYPTION_KEY: not a Fernet key (got {len(key)} characters, expected URL-safe base64 of 32 bytes)"
        )


def _check_database_url(problems: list[str]) -> None:
    url = os.environ.get("DATABASE_URL")
    if url and not (urlsplit(url).scheme and urlsplit(url).netloc):
        problems.append("DATABASE_URL: not a URL (expected scheme://user:password@host/name)")


def _sentry_dsn() -> str | None:
    dsn = os.environ.get("SENTRY_DSN") or None
    if dsn is not None:
        parts = urlsplit(dsn)
        if parts.scheme not in {"http", "https"} or not parts.username or not parts.path.strip("/"):
            # Never fatal: error reporting is optional, and a crashed pod would report nothing.
            logger.warning("SENTRY_DSN is malformed, error reporting is disabled")
            return None
    return dsn


def load() -> Settings:
    """Read and validate the environment, raising one SettingsError that lists every problem."""
    problems: list[str] = []
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not broker_url:
        problems.append("CELERY_BROKER_URL: missing (expected redis://:password@host:port/db)")
    visibility = _parse_number("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600, 1, problems)
    acks_late = _parse_bool("CELERY_TASK_ACKS_LATE", True, problems)
    prefetch = _parse_number("CELERY_WORKER_PREFETCH_MULTIPLIER", 1, 0, problems)
    periodic = _parse_number("SAMPLE_APP_PERIODIC_SECONDS", 5, 0.1, problems)
    _check_secret_key(problems)
    _check_field_encryption_key(problems)
    _check_database_url(problems)
    if problems:
        raise SettingsError("sample_app: invalid environment:\n  " + "\n  ".join(problems))
    return Settings(
        broker_url=broker_url,
        result_backend=os.environ.get("CELERY_RESULT_BACKEND") or broker_url,
        visibility_timeout_seconds=int(visibility),
        task_acks_late=acks_late,
        worker_prefetch_multiplier=int(prefetch),
        periodic_seconds=periodic,
        sentry_dsn=_sentry_dsn(),
    )
