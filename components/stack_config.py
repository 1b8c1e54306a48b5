"""The stack config schema: every key, its type, default and rules, loaded from Pulumi config.

Pulumi's project config can type only strings, integers, booleans and arrays, so structured values
(``limitRange``, ``quota``, ``redis``, ``pools``, ``beat``, ``taskRoutes``) are YAML documents held in
a string key. They parse straight into the components' own typed args, so the components and the
stack share one schema and one set of rules. All problems are collected, then raised once, before
any resource is registered.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError
from pydantic.alias_generators import to_camel

from celery_platform.admission import PodPlan, check_routes
from celery_platform.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.monitoring_spec import MonitoringSpec, exporter_plan
from celery_platform.validation import (
    Problem,
    ValidationError,
    check_count,
    check_database_url,
    check_django_secret_key,
    check_dns_label,
    check_fernet_key,
    check_redis_password,
    check_sentry_dsn,
    raise_if_any,
    redacted,
)
from celery_platform.workers import WorkloadSettings, platform_problems, validate_pools
from celery_platform.workloads import BeatSpec, PodResources, PoolSpec, RedisSpec

PROJECT = "celery-platform"
REQUIRED: Any = object()
# Optional, and not declared in Pulumi.yaml at all. The engine (pkg/v3 workspace/config.go) refuses a
# declared key with no `default:` that a stack leaves out ("is missing configuration value"), and copies a
# `default:` into the stack as plain text, then refuses it for a `secret: true` key ("must be encrypted
# as it's secret"). So an optional secret can only be an undeclared key; absent, its value is "".
UNSET: Any = object()

_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "string_type": "a string",
    "decimal_parsing": "a number",
    "decimal_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dataclass_type": "a mapping of keys",
    "dict_type": "a mapping",
    "missing_keyword_argument": "a value",
    "missing": "a value",
}


@dataclass(frozen=True)
class Key:
    """One config key: its Pulumi type, Python type, default, description and whether it is secret."""

    name: str
    pulumi_type: str
    python_type: Any
    description: str
    default: Any = REQUIRED
    structured: bool = False
    secret: bool = False

    @property
    def declared(self) -> bool:
        """Whether Pulumi.yaml declares this key (every key but the optional secrets, see UNSET)."""
        return self.default is not UNSET

    @property
    def attribute(self) -> str:
        """The StackConfig attribute that holds this key's value."""
        return "".join("_" + c.lower() if c.isupper() else c for c in self.name)


def _check_secret(
    check: typing.Callable[[str, str], list[Problem]],
) -> typing.Callable[[str, Any], list[Problem]]:
    return lambda field, value: check(field, value) if value else []


KEYS: tuple[Key, ...] = (
    Key("namespace", "string", str, "Kubernetes namespace that holds the whole platform.", "celery-platform"),
    Key(
        "clusterDomain",
        "string",
        str,
        "The cluster's DNS domain, used to build the broker host.",
        "cluster.local",
    ),
    Key("rotation", "integer", int, "Bump to regenerate every generated key at once (a keeper).", 0),
    Key(
        "limitRange",
        "string",
        LimitRangeSpec,
        "YAML: the namespace LimitRange (defaultRequest, default, min, max, maxLimitRequestRatio).",
        "{}",
        True,
    ),
    Key("quota", "string", QuotaSpec, "YAML: the namespace ResourceQuota totals.", "{}", True),
    Key("image", "string", str, "The app image with Celery and the tasks, pinned by tag or digest."),
    Key("celeryApp", "string", str, "The Celery app as `celery -A` takes it.", "app"),
    Key("longestTaskSeconds", "integer", int, "Longest task: grace period and visibility timeout follow it.", 300),
    Key("heartbeatMaxAgeSeconds", "integer", int, "Liveness: how stale the worker heartbeat may be.", 60),
    Key("queues", "array", list[str], "Every queue the app uses; each must have a consuming pool.", []),
    Key(
        "taskRoutes",
        "string",
        dict[str, str],
        "YAML: task name to queue, checked against the pools.",
        "{}",
        structured=True,
    ),
    Key(
        "redis",
        "string",
        RedisSpec,
        "YAML: the Redis broker (image, persistent, storageSize, resources).",
        "{}",
        structured=True,
    ),
    Key(
        "pools",
        "string",
        list[PoolSpec],
        "YAML: worker pools (name, queues, replicas, concurrency, resources).",
        structured=True,
    ),
    Key(
        "beat",
        "string",
        BeatSpec,
        "YAML: the single beat (enabled, maxIntervalSeconds, resources).",
        "{}",
        structured=True,
    ),
    Key(
        "initResources",
        "string",
        PodResources,
        "YAML: resources of the wait-for-broker init container (requests, limits); LimitRange applies to it.",
        "{requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 20m, memory: 32Mi}}",
        structured=True,
    ),
    Key(
        "monitoring",
        "string",
        MonitoringSpec,
        "YAML: the metrics exporter, ServiceMonitor, PrometheusRule thresholds (alerts) and Grafana dashboard.",
        "{}",
        structured=True,
    ),
    Key("databaseUrl", "string", str, "Secret: PostgreSQL URL of the app's database.", secret=True),
    Key("sentryDsn", "string", str, "Secret, optional: Sentry DSN https://KEY@HOST/PROJECT.", UNSET, secret=True),
    Key(
        "djangoSecretKey",
        "string",
        str,
        "Secret, optional: replaces the generated Django SECRET_KEY.",
        UNSET,
        secret=True,
    ),
    Key(
        "fieldEncryptionKey",
        "string",
        str,
        "Secret, optional: replaces the generated Fernet FIELD_ENCRYPTION_KEY.",
        UNSET,
        secret=True,
    ),
    Key(
        "redisPassword",
        "string",
        str,
        "Secret, optional: replaces the generated Redis password.",
        UNSET,
        secret=True,
    ),
)

_RULES: dict[str, typing.Callable[[str, Any], list[Problem]]] = {
    "namespace": check_dns_label,
    "rotation": check_count,
    "limitRange": lambda field, spec: spec.validate(field),
    "quota": lambda field, spec: spec.validate(field),
    "longestTaskSeconds": lambda field, value: check_count(field, value, 1),
    "heartbeatMaxAgeSeconds": lambda field, value: check_count(field, value, 10),
    "redis": lambda field, spec: spec.validate(field),
    "pools": lambda field, pools: validate_pools(pools),
    "beat": lambda field, spec: spec.validate(field),
    "initResources": lambda field, spec: spec.validate(field),
    "monitoring": lambda field, spec: spec.validate(field),
    "databaseUrl": check_database_url,
    "sentryDsn": _check_secret(check_sentry_dsn),
    "djangoSecretKey": _check_secret(check_django_secret_key),
    "fieldEncryptionKey": _check_secret(check_fernet_key),
    "redisPassword": _check_secret(check_redis_password),
}


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """A validated stack config. Secret values are plain here; the program wraps them as secrets."""

    namespace: str
    cluster_domain: str
    rotation: int
    limit_range: LimitRangeSpec
    quota: QuotaSpec
    image: str
    celery_app: str
    longest_task_seconds: int
    heartbeat_max_age_seconds: int
    queues: list[str]
    task_routes: dict[str, str]
    redis: RedisSpec
    pools: list[PoolSpec]
    beat: BeatSpec
    init_resources: PodResources
    monitoring: MonitoringSpec
    database_url: str
    sentry_dsn: str
    django_secret_key: str
    field_encryption_key: str
    redis_password: str


def _path(key: str, loc: Sequence[int | str]) -> str:
    out = key
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _allowed_keys(tp: Any, loc: Sequence[int | str]) -> list[str]:
    """Walk ``tp`` along ``loc`` and return the camelCase keys the mapping there accepts."""
    for part in loc:
        origin = typing.get_origin(tp)
        if isinstance(part, int) and origin in (list, tuple, Sequence):
            tp = typing.get_args(tp)[0]
        elif dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            names = {to_camel(f.name): f.name for f in dataclasses.fields(tp)}
            if part not in names:
                return []
            tp = hints[names[str(part)]]
            if typing.get_origin(tp) in (typing.Union, types.UnionType):
                tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return []
    if dataclasses.is_dataclass(tp):
        return sorted(to_camel(f.name) for f in dataclasses.fields(tp))
    return []


def _from_pydantic(key: Key, err: PydanticError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = list(e["loc"])
        got = redacted(str(e["input"])) if key.secret else repr(e["input"])
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = _allowed_keys(key.python_type, loc[:-1])
            problems.append(
                Problem(
                    _path(key.name, loc),
                    "unknown key",
                    got,
                    "one of " + ", ".join(allowed) if allowed else "no key",
                )
            )
            continue
        if e["type"] in ("missing_keyword_argument", "missing"):
            got = "nothing"
        expected = _EXPECTED.get(e["type"], e["msg"])
        problems.append(Problem(_path(key.name, loc), e["msg"].lower(), got, expected))
    return problems


def _decode(key: Key, raw: Any) -> tuple[Any, list[Problem]]:
    """Turn the string Pulumi hands us into the Python value the key's type parses."""
    if not isinstance(raw, str):
        return raw, []
    if key.structured:
        try:
            return yaml.safe_load(raw) or {}, []
        except yaml.YAMLError as err:
            return None, [
                Problem(key.name, f"not valid YAML: {err}".splitlines()[0], repr(raw[:40]), "a YAML document")
            ]
    if key.pulumi_type == "array":
        try:
            return json.loads(raw), []
        except json.JSONDecodeError:
            return None, [Problem(key.name, "not a list", repr(raw), "a YAML list in the stack file")]
    return raw, []


def read_raw_config(project: str = PROJECT) -> dict[str, Any]:
    """Return this project's config keys (without the ``project:`` prefix) as Pulumi passes them."""
    merged = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{project}:"
    return {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}


def parse_stack_config(
    raw: Mapping[str, Any],
    subject: str = f"{PROJECT} stack config",
    secret_keys: frozenset[str] = frozenset(),
) -> StackConfig:
    """Parse and check every key of ``raw``; return a StackConfig or raise one ValidationError.

    ``secret_keys`` names keys set with ``--secret`` whose values must not be shown in messages,
    besides the keys the schema declares secret.
    """
    problems: list[Problem] = []
    known = {k.name: k for k in KEYS}
    for name in sorted(set(raw) - set(known)):
        got = redacted(str(raw[name])) if name in secret_keys else repr(raw[name])
        problems.append(Problem(name, "unknown config key", got, "one of " + ", ".join(sorted(known))))
    values: dict[str, Any] = {}
    for key in KEYS:
        if key.name not in raw and key.default is REQUIRED:
            problems.append(Problem(key.name, "is required", "nothing", f"{key.description} (pulumi config set)"))
            continue
        decoded, decode_problems = _decode(key, raw.get(key.name, "" if key.default is UNSET else key.default))
        problems += decode_problems
        if decode_problems:
            continue
        try:
            value = TypeAdapter(key.python_type).validate_python(decoded)
        except PydanticError as err:
            problems += _from_pydantic(key, err)
            continue
        rule = _RULES.get(key.name)
        problems += rule(key.name, value) if rule else []
        values[key.attribute] = value
    if problems:
        raise ValidationError(subject, problems)
    config = StackConfig(**values)
    raise_if_any(subject, admission_problems(config))
    return config


def workload_settings(config: StackConfig) -> WorkloadSettings:
    """Return the settings every Celery pod of the stack shares."""
    return WorkloadSettings(
        image=config.image,
        app=config.celery_app,
        redis_image=config.redis.image,
        longest_task_seconds=config.longest_task_seconds,
        heartbeat_max_age_seconds=config.heartbeat_max_age_seconds,
        init_resources=config.init_resources,
    )


def admission_problems(config: StackConfig) -> list[Problem]:
    """Check every pod of the stack against its LimitRange and ResourceQuota, and every queue for a pool."""
    settings = workload_settings(config)
    problems = settings.validate()
    if problems:
        return problems
    problems += platform_problems(
        settings, config.redis, config.pools, config.beat, config.limit_range, config.quota, monitoring_plans(config)
    )
    problems += check_routes({p.name: p.queues for p in config.pools}, config.queues, config.task_routes)
    return problems


def monitoring_queues(config: StackConfig) -> list[str]:
    """Return every queue the exporter measures: the stack's queues and every pool's."""
    return sorted({*config.queues, *(q for p in config.pools for q in p.queues)})


def monitoring_plans(config: StackConfig) -> list[PodPlan]:
    """Return the exporter pod for admission, when monitoring is on."""
    if not config.monitoring.enabled:
        return []
    plan = exporter_plan(
        image=config.image,
        spec=config.monitoring,
        queues=monitoring_queues(config),
        run_as_user=workload_settings(config).run_as_user,
    )
    return [plan]


def load_stack_config() -> StackConfig:
    """Read this stack's config from the Pulumi runtime and validate it."""
    raw = read_raw_config()
    secret_keys = frozenset(k for k in raw if pulumi.runtime.config.is_config_secret(f"{PROJECT}:{k}"))
    return parse_stack_config(raw, f"{PROJECT} stack config of stack {pulumi.get_stack()!r}", secret_keys)
