"""Validate-all-then-raise helpers shared by the components and the stack config.

Every rule lives here once. A component's ``__init__`` and the stack-config schema both call the
same ``check_*`` function, so a value that a reusing team passes in code and a value that a platform
team sets in ``Pulumi.<stack>.yaml`` meet the same rule and the same message.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pulumi
from pydantic import ConfigDict, with_config
from pydantic.alias_generators import to_camel

from celery_platform.config.quantities import QuantityError, parse_cpu, parse_memory

# Applied to every args dataclass: the stack config parses YAML straight into the components' own
# typed args (camelCase keys, unknown keys refused), so there is one schema, not two.
args_schema = with_config(ConfigDict(alias_generator=to_camel, extra="forbid", coerce_numbers_to_str=True))

# Every pattern is matched with fullmatch: `$` also matches before a final newline, and "main\n" is no name.
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
# A host in a URL: a DNS name (any case), an IPv4 address, or a bracketed IPv6 address.
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*\.?")
IPV6_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]")
# The distribution/reference grammar (github.com/distribution/reference regexp.go), ASCII only.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
QUEUE_NAME = re.compile(r"[^\s,\x00-\x1f\x7f]{1,200}")
INT32_MAX = 2**31 - 1
# Pulumi carries every number between the program and the engine as a double: above 2**53 an
# integer changes on the way (longestTaskSeconds + 30 would be lost to rounding).
SAFE_INT_MAX = 2**53 - 1
SHOWN_MAX = 80
DJANGO_INSECURE_PREFIX = "django-insecure-"
DJANGO_MIN_LENGTH = 50
DJANGO_MIN_UNIQUE = 5


@dataclass(frozen=True)
class Problem:
    """One invalid field: where it is, what is wrong, what was given and what is allowed."""

    field: str
    problem: str
    got: str
    expected: str

    def __str__(self) -> str:
        parts = (self.field, self.problem, self.got, self.expected)
        field, problem, got, expected = (escaped(part) for part in parts)
        return f"{field}: {problem} (got {got}, expected {expected})"


def escaped(text: str) -> str:
    """``text`` with every unprintable character as its escape: a key may hold a line break or a control.

    A user's map key ends up in a field path; ``\x1e`` or ``\u2028`` in it would otherwise split
    one problem over two lines of the message, or move the terminal's cursor.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class ValidationError(pulumi.RunError):
    """Every problem found in one set of inputs, raised once, before anything is registered.

    It subclasses ``pulumi.RunError`` so that the Pulumi CLI prints the sentence, not a traceback.
    """

    def __init__(self, subject: str, problems: Iterable[Problem]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{subject} is invalid ({len(self.problems)} problem(s)):\n{lines}")


def check_string_tuple(field: str, value: object) -> list[Problem]:
    """Refuse a bare string where a sequence of strings belongs: ``"default"`` is not ``("default",)``.

    Python would iterate it character by character (``-Q d,e,f,a,u,l,t``); the field types say
    ``tuple[str, ...]`` so that mypy refuses it too, and this catches untyped callers.
    """
    if isinstance(value, str | bytes):
        return [Problem(field, "is a bare string, not a list", shown(value), f"a list such as ({value!r},)")]
    if not all(isinstance(item, str) for item in value):  # type: ignore[attr-defined]
        return [Problem(field, "holds a non-string item", shown(value), "a list of strings")]
    return []


def untyped(value: Any) -> Any:
    """Hand a plain Kubernetes mapping to the typed SDK, whose TypedDicts cannot describe built dicts."""
    return value


def validated_by_parent(opts: pulumi.ResourceOptions | None) -> bool:
    """Whether a component's parent validated it with the whole platform (a CeleryPlatform), so it need not again."""
    return bool(getattr(getattr(opts, "parent", None), "validates_children", False))


def raise_if_any(subject: str, problems: list[Problem]) -> None:
    """Raise one ValidationError listing every problem, or return when there are none."""
    if problems:
        raise ValidationError(subject, problems)


def shown(value: object) -> str:
    """Render a non-secret value for an error message, cut short so that no value floods a terminal."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    if len(text) > SHOWN_MAX:
        return f"{text[:SHOWN_MAX]}... ({len(text)} characters)"
    return text


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``: a typo gets its fix."""
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[match[0]]!r}?" if match else ""


def redacted(value: str) -> str:
    """Show the shape of a secret value: URL punctuation kept, every other run of characters masked.

    Error messages must name the value without printing a secret: ``https://abc@x.io/1`` becomes
    ``'*://*@*.*/*'``, enough to see that a scheme or an ``@`` is missing.
    """
    shape = re.sub(r"[^:/@.?#]+", "*", value)
    if len(shape) > SHOWN_MAX:
        shape = shape[:SHOWN_MAX] + "..."
    return "secret shaped " + repr(shape)


def mask_secrets(problems: Iterable[Problem], secrets: Iterable[str]) -> list[Problem]:
    """Replace every occurrence of a secret value in every part of every problem by ``***``.

    The checks show the values they refuse; when a key holds a secret, no part of its value may reach
    a message, wherever a check happened to copy it (a field path, an expected value, a quota share).
    """
    needles = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
    if not needles:
        return list(problems)
    pattern = re.compile("|".join(re.escape(n) for n in needles))

    def clean(text: str) -> str:
        return pattern.sub("***", text)

    return [Problem(clean(p.field), clean(p.problem), clean(p.got), clean(p.expected)) for p in problems]


def check_image_pinned(field: str, image: str) -> list[Problem]:
    """Check that an image is a valid reference with a tag other than ``latest``, or a digest.

    A rollout must be repeatable, and a reference the kubelet cannot parse fails every pull.
    """
    if len(image) > 255 or not IMAGE_REFERENCE.fullmatch(image):
        return [
            Problem(
                field,
                "is not a valid image reference",
                shown(image),
                "[registry/]path[:tag][@sha256:digest] with lowercase path components, no spaces",
            )
        ]
    last = image.rsplit("/", 1)[-1]
    if "@" in last or (":" in last and not last.endswith(":latest")):
        return []
    return [Problem(field, "is not pinned", shown(image), "an image with a tag (not latest) or a digest")]


def check_dns_label(field: str, value: str, max_length: int = 63) -> list[Problem]:
    """Check a Kubernetes object name that must be an RFC 1123 label."""
    if not isinstance(value, str) or len(value) > max_length or not DNS_LABEL.fullmatch(value):
        return [
            Problem(
                field,
                "not a valid RFC 1123 label",
                shown(value),
                f"lowercase letters, digits and '-', starting and ending alphanumeric, at most {max_length} characters",
            )
        ]
    return []


def check_dns_subdomain(field: str, value: str, max_length: int = 253) -> list[Problem]:
    """Check a DNS-1123 subdomain such as a cluster domain or a StorageClass name."""
    if not isinstance(value, str) or len(value) > max_length or not DNS_SUBDOMAIN.fullmatch(value):
        return [
            Problem(
                field,
                "not a valid DNS subdomain",
                shown(value),
                "lowercase RFC 1123 labels joined by '.', each starting and ending alphanumeric, "
                f"at most {max_length} characters",
            )
        ]
    labels = value.split(".")
    if any(len(label) > 63 for label in labels):
        return [Problem(field, "has a label longer than 63 characters", shown(value), "labels of at most 63")]
    return []


def check_label_value(field: str, value: str) -> list[Problem]:
    """Check a Kubernetes label value: at most 63 characters, alphanumeric at both ends."""
    if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        return [
            Problem(
                field,
                "not a valid label value",
                shown(value),
                "at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
            )
        ]
    return []


def check_queue_name(field: str, value: str) -> list[Problem]:
    """Check a Celery queue name: ``-Q`` splits on commas, so a comma or a space splits the queue."""
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        return [
            Problem(
                field,
                "not a usable queue name",
                shown(value),
                "1 to 200 characters without commas, spaces or control characters (celery -Q splits on ',')",
            )
        ]
    return []


def check_cpu(field: str, value: str, allow_zero: bool = False) -> list[Problem]:
    """Check a CPU quantity such as ``400m`` or ``2`` (parsed by the kubernetes client)."""
    try:
        amount = parse_cpu(value)
    except QuantityError as err:
        return [Problem(field, f"not a CPU quantity: {err}", shown(value), "a quantity such as '250m' or '2'")]
    if amount < 0 or (amount == 0 and not allow_zero):
        return [Problem(field, "must be positive", shown(value), "a CPU quantity above 0")]
    return []


def check_memory(field: str, value: str, allow_zero: bool = False) -> list[Problem]:
    """Check a memory quantity such as ``512Mi``; fractional bytes (``512m``) are refused."""
    try:
        amount = parse_memory(value)
    except QuantityError as err:
        return [Problem(field, f"not a memory quantity: {err}", shown(value), "a quantity such as '512Mi' or '1Gi'")]
    if amount < 0 or (amount == 0 and not allow_zero):
        return [Problem(field, "must be positive", shown(value), "a memory quantity above 0")]
    return []


def check_ratio(field: str, value: Decimal | float | int) -> list[Problem]:
    """Check a LimitRange maxLimitRequestRatio: a limit may be at most this many times its request."""
    amount = Decimal(str(value))
    if not amount.is_finite() or abs(amount) > 1000 or amount != amount.quantize(Decimal("0.001")):
        return [Problem(field, "not a usable ratio", shown(value), "a number from 1 to 1000, at most 3 decimals")]
    if amount < 1:
        return [Problem(field, "a limit/request ratio below 1 admits no container", shown(value), "a number >= 1")]
    return []


def check_count(field: str, value: int, minimum: int = 0, maximum: int = INT32_MAX) -> list[Problem]:
    """Check a whole-number count such as replicas, concurrency or seconds.

    ``maximum`` defaults to int32, the type of Kubernetes' counts (replicas, probe periods).
    """
    if value < minimum:
        return [Problem(field, "too small", shown(value), f"a whole number >= {minimum}")]
    if value > maximum:
        return [Problem(field, "too large", shown(value), f"a whole number <= {maximum}")]
    return []


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


# Worker options the platform sets (or that would break what it relies on): PID 1, one beat, the probes.
OWNED_WORKER_OPTIONS = {
    "-A": "celeryApp",
    "--app": "celeryApp",
    "-Q": "the pool's queues",
    "--queues": "the pool's queues",
    "-X": "the pool's queues",
    "--exclude-queues": "the pool's queues",
    "-c": "concurrency",
    "--concurrency": "concurrency",
    "--autoscale": "concurrency (always explicit)",
    "-n": "the pool's name",
    "--hostname": "the pool's name",
    "-I": "the hooks module",
    "--include": "the hooks module",
    "-P": "poolType",
    "--pool": "poolType",
    "-l": "logLevel",
    "--loglevel": "logLevel",
    "--max-memory-per-child": "the memory limit and concurrency",
    "--prefetch-multiplier": "the platform (always 1)",
    "--without-mingle": "the platform",
    "--without-gossip": "the platform",
    "-B": "beat, which runs once, in its own StatefulSet",
    "--beat": "beat, which runs once, in its own StatefulSet",
    "-D": "Kubernetes (Celery must stay PID 1)",
    "--detach": "Kubernetes (Celery must stay PID 1)",
    "--pidfile": "Kubernetes (Celery must stay PID 1)",
    "-f": "the container log",
    "--logfile": "the container log",
    "-s": "beat's schedule file",
    "--schedule": "beat's schedule file",
}


def check_worker_args(field: str, args: Iterable[str]) -> list[Problem]:
    """Refuse an extra ``celery worker`` option that the platform owns (``-Q``, ``-c``, ``--include``, ...)."""
    problems = []
    for i, arg in enumerate(args):
        option = arg.split("=", 1)[0]
        if option not in OWNED_WORKER_OPTIONS and len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            option = arg[:2]  # a short option with its value attached: -Qdefault, -c4
        if option in OWNED_WORKER_OPTIONS:
            problems.append(
                Problem(
                    f"{field}[{i}]",
                    f"{option} is set by the platform from {OWNED_WORKER_OPTIONS[option]}",
                    shown(arg),
                    "an option the platform does not set, e.g. --max-tasks-per-child=100",
                )
            )
    return problems


def check_cidr(field: str, value: str) -> list[Problem]:
    """Check an IPv4 or IPv6 CIDR as NetworkPolicy ipBlock takes it (host bits zero)."""
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        return [Problem(field, f"not a CIDR: {err}", shown(value), "e.g. '10.20.0.0/16' or '192.0.2.10/32'")]
    if "/" not in value:
        return [Problem(field, "has no prefix length", shown(value), f"e.g. '{value}/32'")]
    return []


def check_port(field: str, value: int) -> list[Problem]:
    """Check a TCP port number."""
    if not 1 <= value <= 65535:
        return [Problem(field, "not a port", shown(value), "a whole number from 1 to 65535")]
    return []


REDIS_SCHEMES = ("redis", "rediss")


def check_broker_url(field: str, value: str) -> list[Problem]:
    """Check a Redis broker URL ``redis[s]://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, never printing it."""
    expected = "a URL shaped 'rediss://:PASSWORD@HOST:6379/0'"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return [Problem(field, "not a URL", redacted(value), expected)]
    if parts.scheme not in REDIS_SCHEMES:
        return [Problem(field, "not a redis:// or rediss:// URL", redacted(value), expected)]
    if not parts.hostname or not port_ok:
        return [Problem(field, "a broker URL needs a host", redacted(value), expected)]
    if parts.query or parts.fragment:
        return [Problem(field, "the platform adds the TLS query itself", redacted(value), "no '?' or '#' part")]
    if parts.password and "%" in parts.password:
        return [Problem(field, "a URL-encoded password cannot be read by wait-for-broker", redacted(value), expected)]
    return []
