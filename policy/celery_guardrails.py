"""Pure validate functions behind the celery-platform-guardrails policy pack.

Each `validate_*` function takes a Pulumi resource type token (`kubernetes:apps/v1:Deployment`) and
that resource's inputs as pulumi-kubernetes passes them (camelCase Kubernetes fields), and returns
one message per violation; an empty list means compliant. Nothing here builds a PolicyPack (that
starts the analyzer server), so plain pytest can call these functions directly.

Props are read only through `Mapping`/`Sequence`, never `dict`/`list`, because pulumi_policy hands
policies read-only proxies that raise `UnknownValueError` when a value unknown at preview is read.
Key presence is tested by iterating keys, which never reads the value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity
from pulumi_policy.proxy import UnknownValueError

DEFAULT_MAX_LIMIT_REQUEST_RATIO = Decimal(2)

# Pod spec location per workload kind (the kind is the last segment of the type token).
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
_WORKLOAD_GROUPS = {"apps", "batch", "core", "extensions"}
_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
_PROCESS_LISTERS = {"pgrep", "pidof", "ps"}
_SECCOMP_ALLOWED = {"RuntimeDefault", "Localhost"}
_SECRET_SUBSTRINGS = ("SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL", "APIKEY", "PRIVATE_KEY")
_SECRET_WORDS = {"KEY", "DSN", "PASS"}
_CONNECTION_WORDS = {
    "DATABASE",
    "DB",
    "BROKER",
    "REDIS",
    "AMQP",
    "CACHE",
    "BACKEND",
    "MONGO",
    "MONGODB",
    "POSTGRES",
    "POSTGRESQL",
    "MYSQL",
    "SENTRY",
}
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class Workload:
    """A resource that carries a pod spec, with the path to that pod spec for messages."""

    kind: str
    props: Mapping[str, Any]
    pod_spec: Mapping[str, Any]
    pod_spec_path: str


@dataclass(frozen=True)
class Container:
    """One container or init container of a pod spec, with a label that names it in messages."""

    label: str
    spec: Mapping[str, Any]
    init: bool


def _get(obj: Any, *path: str) -> Any:
    """Value at `path` below `obj`, or None when any step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping) or not _has(obj, key):
            return None
        obj = obj[key]
    return obj


def _has(obj: Mapping[str, Any], key: str) -> bool:
    """True when `obj` has `key`; iterates keys so an unknown value is never read."""
    return any(k == key for k in obj)


def _seq(value: Any) -> Sequence[Any]:
    """`value` when it is a list-like of items (not a string), else an empty tuple."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    return ()


def _number(value: Any) -> float | None:
    """Integers arrive from the engine as floats (`2.0`); None for anything not numeric."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def workload_of(resource_type: str, props: Mapping[str, Any]) -> Workload | None:
    """The workload view of a resource, or None when the resource carries no pod spec.

    Patch resources (`DeploymentPatch`, …) are partial by design and are not covered.
    """
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    group, kind = parts[1].split("/")[0], parts[2]
    path = _POD_SPEC_PATHS.get(kind)
    if path is None or group not in _WORKLOAD_GROUPS or (kind == "Pod") != (group == "core"):
        return None
    pod_spec = _get(props, *path)
    if not isinstance(pod_spec, Mapping):
        return Workload(kind, props, {}, ".".join(path))
    return Workload(kind, props, pod_spec, ".".join(path))


def containers_of(workload: Workload) -> Iterator[Container]:
    """Every container and init container of the workload's pod spec, in spec order."""
    for field, init in (("initContainers", True), ("containers", False)):
        for index, spec in enumerate(_seq(_get(workload.pod_spec, field))):
            if not isinstance(spec, Mapping):
                continue
            name = _get(spec, "name")
            label = f'{workload.pod_spec_path}.{field}[{index}] "{name}"'
            yield Container(label, spec, init)


def _argv_tokens(container: Mapping[str, Any]) -> list[str]:
    """command + args as words; elements that are shell strings (`sh -c "…"`) are split too."""
    tokens: list[str] = []
    for item in [*_seq(_get(container, "command")), *_seq(_get(container, "args"))]:
        text = str(item)
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        tokens.extend(words)
    return tokens


def _basename(token: str) -> str:
    return token.rsplit("/", 1)[-1]


# --- resources ----------------------------------------------------------------------------------


def validate_resources(
    resource_type: str,
    props: Mapping[str, Any],
    max_cpu_ratio: float | Decimal = DEFAULT_MAX_LIMIT_REQUEST_RATIO,
    max_memory_ratio: float | Decimal = DEFAULT_MAX_LIMIT_REQUEST_RATIO,
) -> list[str]:
    """Every container needs cpu and memory requests and limits, with limit/request ≤ the max ratio."""
    workload = workload_of(resource_type, props)
    if workload is None:
        return []
    max_ratios = {"cpu": Decimal(str(max_cpu_ratio)), "memory": Decimal(str(max_memory_ratio))}
    for resource, ratio in max_ratios.items():
        if ratio < 1:
            raise ValueError(f"max {resource} limit/request ratio must be >= 1 (got {ratio})")
    violations: list[str] = []
    for container in containers_of(workload):
        for resource, max_ratio in max_ratios.items():
            violations.extend(_check_resource(container, resource, max_ratio))
    return violations


def _check_resource(container: Container, resource: str, max_ratio: Decimal) -> list[str]:
    quantities: dict[str, tuple[Any, Decimal]] = {}
    violations: list[str] = []
    for bound in ("requests", "limits"):
        field = f"resources.{bound}.{resource}"
        raw = _get(container.spec, "resources", bound, resource)
        if raw is None or raw == "":
            violations.append(
                f"{container.label}: {field} is missing; every container and init container "
                "must set cpu and memory requests and limits"
            )
            continue
        try:
            quantities[bound] = (raw, parse_quantity(raw))
        except ValueError:
            violations.append(
                f"{container.label}: {field} {raw!r} is not a Kubernetes quantity (expected e.g. 500m, 1, 512Mi)"
            )
    if violations:
        return violations
    (raw_request, request), (raw_limit, limit) = quantities["requests"], quantities["limits"]
    pair = f"resources.limits.{resource} {raw_limit} / resources.requests.{resource} {raw_request}"
    if request <= 0:
        return [f"{container.label}: resources.requests.{resource} is {raw_request}; it must be above 0"]
    if limit < request:
        return [f"{container.label}: {pair}: the limit must not be below the request"]
    if limit > request * max_ratio:
        return [
            f"{container.label}: {pair} is a limit/request ratio of {_fmt(limit / request)}; at most "
            f"{_fmt(max_ratio)} is allowed (a LimitRange maxLimitRequestRatio rejects the pod)"
        ]
    return []


def _fmt(value: Decimal) -> str:
    """A ratio for humans: 2, 1.5, 2.667."""
    return f"{value.quantize(Decimal('0.001')).normalize():f}"


# --- images -------------------------------------------------------------------------------------


def validate_image_tags(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Images are pinned: an explicit tag other than `latest`, or a digest."""
    workload = workload_of(resource_type, props)
    if workload is None:
        return []
    allowed = "pin an explicit version tag (repo/app:1.4.2) or a digest (repo/app@sha256:…)"
    violations: list[str] = []
    for container in containers_of(workload):
        image = _get(container.spec, "image")
        if not isinstance(image, str) or not image.strip():
            violations.append(f"{container.label}: image is missing; {allowed}")
            continue
        if re.search(r"@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$", image):
            continue
        last_segment = image.rsplit("/", 1)[-1]
        if ":" not in last_segment:
            violations.append(f"{container.label}: image {image!r} has no tag (means :latest); {allowed}")
        elif last_segment.rsplit(":", 1)[1].lower() == "latest":
            violations.append(f"{container.label}: image {image!r} uses the mutable :latest tag; {allowed}")
    return violations


# --- probes -------------------------------------------------------------------------------------


def validate_probes(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Exec probes must test health, not mere process existence, and must not call `celery inspect ping`."""
    workload = workload_of(resource_type, props)
    if workload is None:
        return []
    allowed = (
        "probe a heartbeat/ready file that the worker itself maintains (worker bootstep + "
        "worker_ready/worker_shutdown signals), or an httpGet/tcpSocket endpoint"
    )
    violations: list[str] = []
    for container in containers_of(workload):
        for probe in _PROBES:
            command = _get(container.spec, probe, "exec", "command")
            if command is None:
                continue
            argv = [str(item) for item in _seq(command)] or [str(command)]
            text = " ".join(argv)
            where = f"{container.label}: {probe}.exec.command {argv!r}"
            tokens = _argv_tokens({"command": argv})
            names = {_basename(t) for t in tokens}
            if "/proc/" in text:
                violations.append(f"{where} reads /proc, which only proves a process exists; {allowed}")
            elif names & _PROCESS_LISTERS:
                violations.append(f"{where} only checks that a process exists; {allowed}")
            if "celery" in names and ({"inspect", "ping"} <= names or "status" in names):
                violations.append(
                    f"{where} broadcasts a celery ping (≈3 s CPU per call, leaks pidbox "
                    f"reply keys, times out under load); {allowed}"
                )
    return violations


# --- celery beat --------------------------------------------------------------------------------


def runs_celery_beat(workload: Workload) -> bool:
    """True when any (non-init) container runs beat: `celery … beat`, or an embedded `worker -B`."""
    for container in containers_of(workload):
        if container.init:
            continue
        tokens = _argv_tokens(container.spec)
        if "beat" in tokens:
            return True
        if "worker" in tokens and ("-B" in tokens or "--beat" in tokens):
            return True
    return False


def validate_beat_singleton(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A workload that runs celery beat can never run two beats at once."""
    workload = workload_of(resource_type, props)
    if workload is None or not runs_celery_beat(workload):
        return []
    kind = workload.kind
    violations: list[str] = []
    prefix = f"{kind} runs celery beat, which must run at most once"
    if kind == "DaemonSet":
        return [f"{prefix}: a DaemonSet runs one beat per node; use a StatefulSet with replicas 1"]
    replicas = _number(_get(props, "spec", "replicas"))
    if kind in {"Deployment", "StatefulSet", "ReplicaSet"} and replicas is not None and replicas > 1:
        violations.append(f"{prefix}: spec.replicas is {replicas:g}; allowed: 0 or 1")
    if kind == "Deployment":
        strategy = _get(props, "spec", "strategy", "type") or "RollingUpdate (the default)"
        if strategy != "Recreate":
            violations.append(
                f"{prefix}: spec.strategy.type is {strategy}, and a rolling update briefly "
                "runs two beats; allowed: Recreate (better: a StatefulSet with replicas 1)"
            )
    job_spec = ("spec", "jobTemplate", "spec") if kind == "CronJob" else ("spec",)
    if kind in {"Job", "CronJob"}:
        parallelism = _number(_get(props, *job_spec, "parallelism"))
        if parallelism is not None and parallelism > 1:
            violations.append(f"{prefix}: {'.'.join(job_spec)}.parallelism is {parallelism:g}; allowed: 1")
    if kind == "CronJob":
        policy = _get(props, "spec", "concurrencyPolicy") or "Allow (the default)"
        if policy != "Forbid":
            violations.append(f"{prefix}: spec.concurrencyPolicy is {policy}, so runs can overlap; allowed: Forbid")
    return violations


# --- secrets in env -----------------------------------------------------------------------------


def looks_secret(env_name: str) -> bool:
    """True for names such as SECRET_KEY, REDIS_PASSWORD, SENTRY_DSN, DATABASE_URL, CELERY_BROKER_URL."""
    upper = env_name.upper()
    words = set(re.split(r"[_.\-]+", upper))
    if any(part in upper for part in _SECRET_SUBSTRINGS) or words & _SECRET_WORDS:
        return True
    if upper.endswith("RESULT_BACKEND") or upper.endswith("CONNECTION_STRING"):
        return True
    return bool(re.search(r"(URL|URI)$", upper)) and bool(words & _CONNECTION_WORDS)


def validate_secret_env(
    resource_type: str, props: Mapping[str, Any], allowed_literal_names: Sequence[str] = ()
) -> list[str]:
    """Env vars with secret-looking names come from `valueFrom.secretKeyRef`, never a literal `value`.

    A `value` made of `$(VAR)` references to earlier secretKeyRef vars holds no secret itself, so it is
    allowed (e.g. `redis://:$(REDIS_PASSWORD)@redis:6379/0`).
    """
    workload = workload_of(resource_type, props)
    if workload is None:
        return []
    allowed = set(allowed_literal_names)
    violations: list[str] = []
    for container in containers_of(workload):
        from_secrets: set[str] = set()
        for index, entry in enumerate(_seq(_get(container.spec, "env"))):
            if not isinstance(entry, Mapping):
                continue
            name = _get(entry, "name")
            if not isinstance(name, str):
                continue
            field = f"env[{index}] {name}"
            if _get(entry, "valueFrom", "secretKeyRef") is not None:
                from_secrets.add(name)
                continue
            if not looks_secret(name) or name in allowed:
                continue
            if _has(entry, "value"):
                if _only_secret_references(entry, from_secrets):
                    continue
                violations.append(
                    f"{container.label}: {field} is a literal value; a secret must come from "
                    "valueFrom.secretKeyRef (a Kubernetes Secret), never from value"
                )
            elif _has(entry, "valueFrom"):
                violations.append(
                    f"{container.label}: {field} does not come from a Secret; allowed: valueFrom.secretKeyRef"
                )
    return violations


def _only_secret_references(entry: Mapping[str, Any], from_secrets: set[str]) -> bool:
    try:
        value = entry["value"]
    except UnknownValueError:
        return False  # unknown at preview: it is a literal all the same
    refs = _VAR_REF.findall(value) if isinstance(value, str) else []
    return bool(refs) and all(ref in from_secrets for ref in refs)


# --- security context ---------------------------------------------------------------------------


def validate_security_context(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Pod Security Standards "restricted": non-root, no escalation, no capabilities, seccomp, no host*."""
    workload = workload_of(resource_type, props)
    if workload is None:
        return []
    pod = workload.pod_spec
    path = workload.pod_spec_path
    violations = [
        f"{path}.{field} is true; allowed: false or unset"
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if _get(pod, field) is True
    ]
    pod_sc = _get(pod, "securityContext")
    for container in containers_of(workload):
        sc = _get(container.spec, "securityContext")

        def effective(field: str, sc: Any = sc) -> Any:
            own = _get(sc, field)
            return own if own is not None else _get(pod_sc, field)

        where = container.label
        if effective("runAsNonRoot") is not True:
            # The container's own value wins over the pod's, so say which one decided.
            value = effective("runAsNonRoot")
            shown = "unset" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
            source = "the container" if _get(sc, "runAsNonRoot") is not None else "the pod (the container sets none)"
            violations.append(f"{where}: securityContext.runAsNonRoot is {shown} on {source}; allowed: true")
        if _number(effective("runAsUser")) == 0:
            violations.append(f"{where}: securityContext.runAsUser is 0 (root); allowed: a non-zero UID")
        if _get(sc, "allowPrivilegeEscalation") is not False:
            violations.append(
                f"{where}: securityContext.allowPrivilegeEscalation is "
                f"{_describe(_get(sc, 'allowPrivilegeEscalation'))}; allowed: false"
            )
        if _get(sc, "privileged") is True:
            violations.append(f"{where}: securityContext.privileged is true; allowed: false or unset")
        drop = [str(c) for c in _seq(_get(sc, "capabilities", "drop"))]
        if "ALL" not in drop:
            violations.append(f"{where}: securityContext.capabilities.drop is {drop!r}; must include 'ALL'")
        added = [str(c) for c in _seq(_get(sc, "capabilities", "add")) if str(c) != "NET_BIND_SERVICE"]
        if added:
            violations.append(
                f"{where}: securityContext.capabilities.add has {added!r}; allowed: only NET_BIND_SERVICE"
            )
        seccomp = _get(effective("seccompProfile"), "type")
        if seccomp not in _SECCOMP_ALLOWED:
            violations.append(
                f"{where}: securityContext.seccompProfile.type is {_describe(seccomp)} "
                "(container or pod); allowed: RuntimeDefault or Localhost"
            )
    return violations


def _describe(value: Any) -> str:
    return "unset" if value is None else repr(value)


# --- the namespace's own LimitRange ---------------------------------------------------------------


def limit_range_ratios(resource_type: str, props: Mapping[str, Any]) -> tuple[str, Decimal, Decimal] | None:
    """(namespace, cpu ratio, memory ratio) of a LimitRange's Container maxLimitRequestRatio, else None.

    The ratio a namespace admits is the one its own LimitRange sets, not a number fixed in this pack:
    a stack whose LimitRange allows 4 must not be refused at 2. A ratio it leaves out is 2, the pack's default.
    """
    if resource_type != "kubernetes:core/v1:LimitRange":
        return None
    try:
        namespace = _get(props, "metadata", "namespace")
        ratios = {"cpu": DEFAULT_MAX_LIMIT_REQUEST_RATIO, "memory": DEFAULT_MAX_LIMIT_REQUEST_RATIO}
        for limit in _seq(_get(props, "spec", "limits")):
            if _get(limit, "type") != "Container":
                continue
            for resource in ratios:
                value = _get(limit, "maxLimitRequestRatio", resource)
                if value is not None:
                    ratios[resource] = Decimal(str(parse_quantity(value)))
    except (UnknownValueError, ValueError):
        return None
    if not isinstance(namespace, str):
        return None
    return namespace, ratios["cpu"], ratios["memory"]


def namespace_of(props: Mapping[str, Any]) -> str | None:
    """The resource's metadata.namespace, or None when it is unset or unknown at preview."""
    try:
        namespace = _get(props, "metadata", "namespace")
    except UnknownValueError:
        return None
    return namespace if isinstance(namespace, str) else None


# --- service account token ------------------------------------------------------------------------


def validate_service_account_token(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A pod that asks for the API token names its own ServiceAccount, never the namespace's default."""
    workload = workload_of(resource_type, props)
    if workload is None or _get(workload.pod_spec, "automountServiceAccountToken") is not True:
        return []
    if _get(workload.pod_spec, "serviceAccountName") not in (None, "", "default"):
        return []
    return [
        f"{workload.pod_spec_path}.automountServiceAccountToken is true with the namespace's default "
        "ServiceAccount; name the pods' own serviceAccountName, or set it to false"
    ]
