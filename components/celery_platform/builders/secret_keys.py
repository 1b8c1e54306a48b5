"""The keys of the platform Secret, which every pod reads by name, and the Fernet key's alphabet."""

from __future__ import annotations

# Keys of the Kubernetes Secret; the workloads reference them with secretKeyRef.
SECRET_KEY = "SECRET_KEY"
FIELD_ENCRYPTION_KEY = "FIELD_ENCRYPTION_KEY"
REDIS_PASSWORD = "REDIS_PASSWORD"
# The Sentinels' own password (broker.type sentinel); generated only there.
SENTINEL_PASSWORD = "SENTINEL_PASSWORD"
DATABASE_URL = "DATABASE_URL"
SENTRY_DSN = "SENTRY_DSN"


def fernet_key_from_base64(standard_b64: str) -> str:
    """Turn RandomBytes' standard base64 of 32 bytes into a Fernet key (URL-safe base64).

    Both alphabets share 62 characters; only ``+`` and ``/`` become ``-`` and ``_``. The ``=``
    padding stays, as in ``Fernet.generate_key()``.
    """
    return standard_b64.translate(str.maketrans("+/", "-_"))
