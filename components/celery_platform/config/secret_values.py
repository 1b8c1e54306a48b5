"""The rules of the secret values: URLs, DSN and keys as Django, Fernet, Redis and psycopg read them. Never shown."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from celery_platform.config.addresses import check_host
from celery_platform.config.problems import Problem, redacted

URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
# A host in a URL: a DNS name (any case), an IPv4 address, or a bracketed IPv6 address.
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*\.?")
IPV6_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]")
DJANGO_INSECURE_PREFIX = "django-insecure-"
DJANGO_MIN_LENGTH = 50
DJANGO_MIN_UNIQUE = 5


def check_url_text(field: str, value: str, expected: str) -> list[Problem]:
    """Refuse whitespace and control characters anywhere in a URL: clients strip or split on them."""
    if re.search(r"[\s\x00-\x1f\x7f]", value):
        return [Problem(field, "holds whitespace or a control character", redacted(value), expected)]
    return []


def host_ok(host: str | None) -> bool:
    """Tell whether a URL's host is a DNS name, an IPv4 address or a bracketed IPv6 address."""
    if not host or len(host) > 253:
        return False
    return bool(HOST_NAME.fullmatch(host) or IPV6_HOST.fullmatch(host))


def check_sentry_dsn(field: str, value: str) -> list[Problem]:
    """Check a Sentry DSN shaped ``https://KEY@HOST/PROJECT`` (a malformed one crashes pods at start)."""
    expected = "a DSN shaped 'https://KEY@HOST/PROJECT' with a numeric PROJECT"
    if text_problems := check_url_text(field, value, expected):
        return text_problems
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return [Problem(field, "not a URL", redacted(value), expected)]
    project = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if (
        parts.scheme != "https"
        or not parts.username
        or not host_ok(parts.hostname)
        or not port_ok
        or not project.isascii()
        or not project.isdigit()
        or parts.query
        or parts.fragment
    ):
        return [Problem(field, "not a valid Sentry DSN", redacted(value), expected)]
    return []


POSTGRES_SCHEMES = ("postgres", "postgresql")


def check_database_url(field: str, value: str) -> list[Problem]:
    """Check a PostgreSQL URL ``postgres[ql][+driver]://USER:PASSWORD@HOST[:PORT]/DB``."""
    expected = "a URL shaped 'postgresql://USER:PASSWORD@HOST:5432/DB'"
    if text_problems := check_url_text(field, value, expected):
        return text_problems
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return [Problem(field, "not a URL", redacted(value), expected)]
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in POSTGRES_SCHEMES:
        return [Problem(field, "not a PostgreSQL URL", redacted(value), expected)]
    if not host_ok(parts.hostname) or not port_ok or not parts.path.strip("/"):
        return [Problem(field, "a PostgreSQL URL needs a host and a database name", redacted(value), expected)]
    return []


def check_django_secret_key(field: str, value: str) -> list[Problem]:
    """Check Django's own rules for SECRET_KEY (``manage.py check --deploy``, security.W009)."""
    problems = []
    if len(value) < DJANGO_MIN_LENGTH or len(set(value)) < DJANGO_MIN_UNIQUE:
        problems.append(
            Problem(
                field,
                "too weak for Django",
                f"{redacted(value)} of {len(value)} characters, {len(set(value))} unique",
                f"at least {DJANGO_MIN_LENGTH} characters with at least {DJANGO_MIN_UNIQUE} unique",
            )
        )
    if value.startswith(DJANGO_INSECURE_PREFIX):
        problems.append(
            Problem(field, "is Django's development key", redacted(value), f"no '{DJANGO_INSECURE_PREFIX}' prefix")
        )
    return problems


def check_fernet_key(field: str, value: str) -> list[Problem]:
    """Check a Fernet key: URL-safe base64 that decodes to exactly 32 bytes."""
    expected = "URL-safe base64 of 32 bytes (44 characters, e.g. from Fernet.generate_key())"
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return [Problem(field, "not URL-safe base64", redacted(value), expected)]
    if len(raw) != 32 or not re.fullmatch(r"[A-Za-z0-9_-]{43}=", value):
        return [Problem(field, f"decodes to {len(raw)} bytes", redacted(value), expected)]
    return []


def check_redis_password(field: str, value: str) -> list[Problem]:
    """Check a Redis password that goes into ``redis://:PASSWORD@host`` without URL-encoding."""
    if len(value) < 16 or len(value) > 512 or not URL_SAFE.fullmatch(value):
        return [
            Problem(
                field,
                "not a URL-safe password of at least 16 characters",
                f"{redacted(value)} of {len(value)} characters",
                "letters, digits and '._~-' only, 16 to 512 characters",
            )
        ]
    return []


REDIS_SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "sentinel"


def check_broker_url(field: str, value: str) -> list[Problem]:
    """Check a Redis broker URL ``redis[s]://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, or a Sentinel-fronted one
    ``sentinel://:PASSWORD@SENTINEL:26379/DB;sentinel://...`` (kombu's list of every Sentinel), never printing it."""
    if value.startswith(f"{SENTINEL_SCHEME}://"):
        parts = value.split(";")
        problems = [p for part in parts for p in _check_one_url(field, part, (SENTINEL_SCHEME,))]
        if not problems and len({(urlsplit(p).password, urlsplit(p).path) for p in parts}) > 1:
            problems.append(
                Problem(field, "its Sentinels differ in password or database", redacted(value), "one of each")
            )
        return problems[:1]
    return _check_one_url(field, value, REDIS_SCHEMES)


def _check_one_url(field: str, value: str, schemes: tuple[str, ...]) -> list[Problem]:
    sentinel = schemes == (SENTINEL_SCHEME,)
    expected = (
        "a URL list shaped 'sentinel://:PASSWORD@HOST:26379/0;sentinel://:PASSWORD@HOST2:26379/0'"
        if sentinel
        else "a URL shaped 'rediss://:PASSWORD@HOST:6379/0'"
    )
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return [Problem(field, "not a URL", redacted(value), expected)]
    if parts.scheme not in schemes:
        allowed = "sentinel://" if sentinel else "a redis://, rediss:// or sentinel://"
        return [Problem(field, f"not {allowed} URL", redacted(value), expected)]
    if not parts.hostname:
        return [Problem(field, "a broker URL needs a host", redacted(value), expected)]
    if not port_ok:
        return [Problem(field, "its port is 0", redacted(value), "a port from 1 to 65535, or none for 6379")]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if check_host(field, host):  # the host is shown masked: it comes from a secret
        return [Problem(field, "its host is not a hostname, an IPv4 or an IPv6 address", redacted(value), expected)]
    if parts.query or parts.fragment:
        return [Problem(field, "the platform adds the TLS query itself", redacted(value), "no '?' or '#' part")]
    if parts.password and "%" in parts.password:
        return [Problem(field, "a URL-encoded password cannot be read by wait-for-broker", redacted(value), expected)]
    return []
