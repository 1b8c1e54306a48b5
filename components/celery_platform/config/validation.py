"""The rules of the values handed to Kubernetes: names, labels, images, quantities, counts, CIDRs and ports.

Each rule lives here once, written to the rule of the API server that consumes the value. The args
types call these ``check_*`` functions, so a value that a package consumer passes in code and a value
that a platform team sets in ``Pulumi.<stack>.yaml`` meet the same rule and the same message. The
secret values' rules are in :mod:`celery_platform.config.secret_values`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import QuantityError, parse_cpu, parse_memory

# Every pattern is matched with fullmatch: `$` also matches before a final newline, and "main\n" is no name.
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
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


# The name part of a qualified name (label and annotation keys, topology keys): IsQualifiedName.
LABEL_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
# A ConfigMap or Secret key (IsConfigMapKey): at most 253, and neither '.' nor anything starting with '..'.
CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# The API server's limit on an object's annotations: the sum of the keys' and values' UTF-8 bytes.
TOTAL_ANNOTATION_SIZE_LIMIT_B = 262144


def check_subdomain(field: str, value: str) -> list[Problem]:
    """Check a Kubernetes object name that must be an RFC 1123 subdomain (NameIsDNSSubdomain)."""
    if not isinstance(value, str) or len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value):
        return [
            Problem(field, "not a valid object name", shown(value), "lowercase RFC 1123 subdomain, e.g. 'smtp-creds'")
        ]
    return []


def is_qualified_name(key: object) -> bool:
    """Return whether ``key`` is a qualified name (``[prefix/]name``), the API server's label key rule."""
    if not isinstance(key, str):
        return False
    parts = key.split("/")
    if len(parts) > 2:
        return False
    if len(parts) == 2 and (not parts[0] or len(parts[0]) > 253 or not DNS_SUBDOMAIN.fullmatch(parts[0])):
        return False
    return len(parts[-1]) <= 63 and bool(LABEL_NAME.fullmatch(parts[-1]))


def is_label_value(value: object) -> bool:
    """Return whether ``value`` is a label value (IsValidLabelValue): empty, or <= 63 alphanumeric at both ends."""
    return isinstance(value, str) and len(value) <= 63 and bool(LABEL_VALUE.fullmatch(value))


def check_qualified_name(field: str, key: object, what: str = "label key") -> list[Problem]:
    """Check a label key, a taint key or a topology key."""
    if is_qualified_name(key):
        return []
    return [
        Problem(
            field,
            f"not a valid {what}",
            shown(key),
            "[prefix/]name: an optional DNS subdomain and '/', then at most 63 of [-A-Za-z0-9_.], "
            "alphanumeric at both ends",
        )
    ]


def check_labels(field: str, labels: object) -> list[Problem]:
    """Check label keys and values as the API server does (ValidateLabels)."""
    if not isinstance(labels, Mapping):
        return [Problem(field, "is not a mapping", shown(labels), "a mapping of label keys to label values")]
    problems = []
    for key, value in labels.items():
        problems += check_qualified_name(f"{field}.{key}", key)
        if not is_label_value(value):
            problems.append(
                Problem(
                    f"{field}.{key}",
                    "not a valid label value",
                    shown(value),
                    "at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends, or empty",
                )
            )
    return problems


def _go_lower(key: str) -> str:
    # Go's strings.ToLower maps each rune by its simple case mapping; Python's str.lower by the full one,
    # which differs where it matters here only for U+0130 (Go: "i", Python: "i" + U+0307).
    return "".join("i" if c == "\u0130" else c.lower() for c in key)


def check_annotations(field: str, annotations: object) -> list[Problem]:
    """Check annotations as the API server does (ValidateAnnotations): keys, string values, the total size.

    A key is a qualified name whatever its case; keys and values together take at most 256 KiB.
    """
    if not isinstance(annotations, Mapping):
        return [Problem(field, "is not a mapping", shown(annotations), "a mapping of annotation keys to strings")]
    problems = []
    total = 0
    for key, value in annotations.items():
        if not isinstance(key, str) or not is_qualified_name(_go_lower(key)):
            problems.append(Problem(f"{field}.{key}", "not a valid annotation key", shown(key), "[prefix/]name"))
        if not isinstance(value, str):
            problems.append(Problem(f"{field}.{key}", "not a string", shown(value), "a string value"))
            continue
        total += len(str(key).encode("utf-8", "surrogatepass")) + len(value.encode("utf-8", "surrogatepass"))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        problems.append(
            Problem(
                field,
                "is too large",
                f"{total} bytes of keys and values",
                f"at most {TOTAL_ANNOTATION_SIZE_LIMIT_B} bytes (256 KiB) in all",
            )
        )
    return problems


def is_env_var_name(name: object) -> bool:
    """Return whether ``name`` is an env var name or envFrom prefix as the API server takes it.

    Kubernetes 1.34 made RelaxedEnvironmentVariableValidation GA (IsRelaxedEnvVarName): any printable
    ASCII character but '=', at least one.
    """
    return isinstance(name, str) and bool(name) and all(" " <= c <= "~" and c != "=" for c in name)


def check_env_var_name(field: str, name: object, what: str = "env var name") -> list[Problem]:
    """Check an env var name or an envFrom prefix."""
    if is_env_var_name(name):
        return []
    allowed = "printable ASCII characters other than '=', e.g. SMTP_HOST"
    return [Problem(field, f"not a valid {what}", shown(name), allowed)]


def check_config_map_key(field: str, key: object) -> list[Problem]:
    """Check a key of a ConfigMap or Secret (IsConfigMapKey)."""
    if (
        isinstance(key, str)
        and len(key) <= 253
        and CONFIG_MAP_KEY.fullmatch(key)
        and key != "."
        and not key.startswith("..")
    ):
        return []
    return [
        Problem(
            field,
            "not a valid ConfigMap or Secret key",
            shown(key),
            "1 to 253 of [-._a-zA-Z0-9], not '.' and not starting with '..'",
        )
    ]
