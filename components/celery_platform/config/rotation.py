"""Rotation keepers: bump one number to regenerate one generated key, and only that key."""

from __future__ import annotations

from dataclasses import dataclass

from celery_platform.config.problems import Problem
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import INT32_MAX, check_count

# Shown on the Kubernetes Secret (and so in the render) per generated key: a rotation is reviewable.
ROTATION_ANNOTATION = "celery-platform/rotation."


@args_schema
@dataclass(frozen=True, kw_only=True)
class Rotation:
    """One keeper per generated key: bump a number to regenerate that key, and only that key.

    There is deliberately no "rotate everything" number: FIELD_ENCRYPTION_KEY encrypts data at rest
    (django-fernet-fields), and a new key makes every encrypted column unreadable until re-encrypted.
    """

    django_secret_key: int = 0
    """Keeper of the generated Django ``SECRET_KEY``. Default: ``0``."""
    redis_password: int = 0
    """Keeper of the generated Redis password (Redis and every worker restart with it). Default: ``0``."""
    sentinel_password: int = 0
    """Keeper of the generated Sentinel password, with ``broker.type: sentinel`` (the Sentinels and every
    Celery pod restart with it). Default: ``0``."""
    field_encryption_key: int = 0
    """Keeper of the generated ``FIELD_ENCRYPTION_KEY``; re-encrypt your data before bumping it, and
    unprotect the key first (see ``SecretsArgs.protect_field_encryption_key``). Default: ``0``."""

    def validate(self, field: str) -> list[Problem]:
        """Return every keeper that is negative or too large."""
        return [
            p for name, value in self.keepers().items() for p in check_count(f"{field}.{name}", value, 0, INT32_MAX)
        ]

    def keepers(self) -> dict[str, int]:
        """Return each key's keeper by its config name (``djangoSecretKey``)."""
        return {
            "djangoSecretKey": self.django_secret_key,
            "redisPassword": self.redis_password,
            "sentinelPassword": self.sentinel_password,
            "fieldEncryptionKey": self.field_encryption_key,
        }


def rotation_problems(field: str, rotation: object) -> list[Problem]:
    """Refuse the old single rotation number: bumping it regenerated FIELD_ENCRYPTION_KEY with the rest."""
    if isinstance(rotation, Rotation):
        return rotation.validate(field)
    if rotation == 0 and not isinstance(rotation, bool):
        return []
    return [
        Problem(
            field,
            "is one number for every key, which would regenerate FIELD_ENCRYPTION_KEY too",
            repr(rotation),
            "one keeper per key: rotation.djangoSecretKey, rotation.redisPassword, rotation.sentinelPassword, "
            "rotation.fieldEncryptionKey "
            "(to keep today's keys, set each to the number the stack used so far)",
        )
    ]
