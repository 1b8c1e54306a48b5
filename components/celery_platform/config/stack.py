"""The stack config schema: every key, its type, default and rules, loaded from Pulumi config.

Pulumi's project config can type only strings, integers, booleans and arrays, so structured values
(``limitRange``, ``quota``, ``redis``, ``pools``, ``beat``, ``taskRoutes``) are YAML documents held in
a string key. They parse straight into the components' own typed args, so the components and the
stack share one schema and one set of rules. All problems are collected, then raised once, before
any resource is registered.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError
from pydantic.alias_generators import to_camel

from celery_platform.build.admission import PodPlan, check_routes
from celery_platform.build.workloads import MAX_LONGEST_TASK_SECONDS
from celery_platform.config._yaml import YamlError, load_yaml
from celery_platform.config.autoscaling import KedaOperator, is_autoscaled
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.monitoring import MonitoringSpec, exporter_plan
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.specs import BeatSpec, PodResources, PoolSpec, RedisSpec
from celery_platform.config.validation import (
    Problem,
    ValidationError,
    check_broker_url,
    check_count,
    check_database_url,
    check_django_secret_key,
    check_dns_label,
    check_dns_subdomain,
    check_fernet_key,
    check_redis_password,
    check_sentry_dsn,
    did_you_mean,
    mask_secrets,
    raise_if_any,
    redacted,
    shown,
)
from celery_platform.resources.broker import BrokerChoice
from celery_platform.resources.namespace import EgressRule
from celery_platform.resources.secrets import Rotation, rotation_problems
from celery_platform.resources.workers import WorkloadSettings, platform_problems, pod_problems, validate_pools

PROJECT = "celery-platform"
REQUIRED: Any = object()
# Optional, and not declared in Pulumi.yaml at all. The engine (pkg/v3 workspace/config.go) refuses a
# declared key with no `default:` that a stack leaves out ("is missing configuration value"), and copies a
# `default:` into the stack as plain text, then refuses it for a `secret: true` key ("must be encrypted
# as it's secret"). So an optional secret can only be an undeclared key; absent, its value is "".
UNSET: Any = object()
# Config namespaces a stack may use besides the project's own: the providers' and the engine's.
OTHER_NAMESPACES = ("kubernetes", "pulumi", "random")
# More pools than this is a typo or a generator gone wrong, and would take minutes to preview.
MAX_POOLS = 100

_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "string_type": "a string",
    "decimal_parsing": "a number",
    "decimal_type": "a number",
    "finite_number": "a finite number",
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
    declared: bool = True
    """Whether Pulumi.yaml declares the key. Not the optional secrets (see UNSET), nor ``rotation``,
    which is a map (``pulumi config set --path rotation.djangoSecretKey 1``) and Pulumi.yaml cannot
    type a map."""

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
    Key(
        "rotation",
        "object",
        Rotation | int,
        "Keepers: bump rotation.djangoSecretKey, rotation.redisPassword or rotation.fieldEncryptionKey to "
        "regenerate that key alone.",
        "{}",
        structured=True,
        declared=False,
    ),
    Key(
        "protectFieldEncryptionKey",
        "boolean",
        bool,
        "Protect the generated FIELD_ENCRYPTION_KEY: the engine refuses to replace or delete it.",
        True,
    ),
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
        "YAML: worker pools (name, queues, replicas, concurrency, resources, autoscaling).",
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
        "rolloutTimeoutSeconds",
        "integer",
        int,
        "How long `pulumi up` waits for Redis, a pool or beat to become ready before it fails.",
        600,
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
    Key(
        "sentryDsn",
        "string",
        str,
        "Secret, optional: Sentry DSN https://KEY@HOST/PROJECT.",
        UNSET,
        secret=True,
        declared=False,
    ),
    Key(
        "djangoSecretKey",
        "string",
        str,
        "Secret, optional: replaces the generated Django SECRET_KEY.",
        UNSET,
        secret=True,
        declared=False,
    ),
    Key(
        "fieldEncryptionKey",
        "string",
        str,
        "Secret, optional: replaces the generated Fernet FIELD_ENCRYPTION_KEY.",
        UNSET,
        secret=True,
        declared=False,
    ),
    Key(
        "redisPassword",
        "string",
        str,
        "Secret, optional: replaces the generated Redis password.",
        UNSET,
        secret=True,
        declared=False,
    ),
    # Fit your cluster (issue 10): pod settings, the broker choice and egress narrowing.
    Key(
        "pod",
        "string",
        PodSettings,
        "YAML: settings of every Celery pod (serviceAccount, imagePullSecrets, placement, env, volumes, pythonPath).",
        "{}",
        structured=True,
    ),
    Key(
        "broker",
        "string",
        BrokerChoice,
        "YAML: the broker, `type: redis` (ours) or `type: external` with its host, URL Secret, TLS and CIDR.",
        "{}",
        structured=True,
    ),
    Key(
        "egress",
        "string",
        list[EgressRule],
        "YAML: extra egress rules (cidr, ports) besides DNS, the broker and a database named by IP address.",
        "[]",
        structured=True,
    ),
    Key(
        "kedaOperator",
        "string",
        KedaOperator,
        "YAML: where the KEDA operator runs (namespace, podLabels); our Redis admits it when a pool autoscales.",
        "{}",
        structured=True,
    ),
    Key(
        "brokerUrl",
        "string",
        str,
        "Secret, optional: the external broker's URL redis[s]://:PASSWORD@HOST:PORT/DB.",
        UNSET,
        secret=True,
        declared=False,
    ),
)


def _check_cluster_domain(field: str, value: str) -> list[Problem]:
    """The broker host is ``<service>.<namespace>.svc.<clusterDomain>``: a DNS subdomain, nothing else.

    Anything more (``cluster.local@evil.example``) would move the host part of the secret broker URL.
    """
    return check_dns_subdomain(field, value, max_length=253 - len("redis.svc.") - 63 - 1)


_RULES: dict[str, typing.Callable[[str, Any], list[Problem]]] = {
    "namespace": check_dns_label,
    "clusterDomain": _check_cluster_domain,
    "rotation": rotation_problems,
    "limitRange": lambda field, spec: spec.validate(field),
    "quota": lambda field, spec: spec.validate(field),
    "longestTaskSeconds": lambda field, value: check_count(field, value, 1, MAX_LONGEST_TASK_SECONDS),
    "heartbeatMaxAgeSeconds": lambda field, value: check_count(field, value, 10),
    "redis": lambda field, spec: spec.validate(field),
    "pools": lambda field, pools: _check_pool_count(pools) or validate_pools(pools),
    "beat": lambda field, spec: spec.validate(field),
    "initResources": lambda field, spec: spec.validate(field),
    "monitoring": lambda field, spec: spec.validate(field),
    "databaseUrl": check_database_url,
    "sentryDsn": _check_secret(check_sentry_dsn),
    "djangoSecretKey": _check_secret(check_django_secret_key),
    "fieldEncryptionKey": _check_secret(check_fernet_key),
    "redisPassword": _check_secret(check_redis_password),
    "pod": lambda field, spec: spec.validate(field) + spec.validate_references(field),
    "broker": lambda field, spec: spec.validate(field),
    "kedaOperator": lambda field, spec: spec.validate(field),
    "egress": lambda field, rules: [p for i, rule in enumerate(rules) for p in rule.validate(f"{field}[{i}]")],
    "brokerUrl": _check_secret(check_broker_url),
}


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """A validated stack config. Secret values are plain here; the program wraps them as secrets."""

    namespace: str
    cluster_domain: str
    rotation: Rotation
    protect_field_encryption_key: bool
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
    rollout_timeout_seconds: int
    monitoring: MonitoringSpec
    database_url: str
    sentry_dsn: str
    django_secret_key: str
    field_encryption_key: str
    redis_password: str
    pod: PodSettings
    broker: BrokerChoice
    egress: list[EgressRule]
    keda_operator: KedaOperator
    broker_url: str
    secret_keys: frozenset[str] = frozenset()
    """Keys the stack holds as secret: the program keeps whatever it derives from them secret."""


def _path(key: str, loc: Sequence[int | str]) -> str:
    out = key
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{_field_name(str(part))}"
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


def _from_pydantic(key: Key, err: PydanticError, secret: bool) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = list(e["loc"])
        # A union (rotation: a map or 0) reports each branch; the branch name is no place the user typed.
        loc = [part for part in loc if not (isinstance(part, str) and part in _BRANCHES)]
        got = redacted(str(e["input"])) if secret else shown(e["input"])
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = _allowed_keys(_unwrap(key.python_type), loc[:-1])
            problems.append(
                Problem(
                    _path(key.name, loc),
                    "unknown key" + did_you_mean(str(loc[-1]), allowed),
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


_BRANCHES = {"Rotation", "int", "function-plain[_validate()]"}


def _unwrap(tp: Any) -> Any:
    """The dataclass of ``Rotation | int``, for listing the keys it accepts."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), tp)
    return tp


def _yaml_problem(key: Key, err: YamlError, secret: bool) -> Problem:
    problem = err.problem
    if secret:  # PyYAML quotes the offending text; a secret's text stays out of the message
        problem = re.sub(r"'[^']*'", "'*'", problem)
    where = f" at {err.where} of its value" if err.where else ""
    return Problem(key.name, f"not valid YAML{where}: {problem}", "a YAML document", "a YAML document")


def _decode(key: Key, raw: Any, secret: bool) -> tuple[Any, list[Problem]]:
    """Turn the string Pulumi hands us into the Python value the key's type parses."""
    if raw is None:
        return None, [Problem(key.name, "is null", "null", "a value (leave the key out to take its default)")]
    if not isinstance(raw, str):
        return raw, []
    if key.structured or key.pulumi_type == "array":
        try:
            decoded = load_yaml(raw)
        except YamlError as err:
            return None, [_yaml_problem(key, err, secret)]
        if key.pulumi_type == "array" and not isinstance(decoded, list):
            got = redacted(raw) if secret else shown(raw)
            return None, [Problem(key.name, "not a list", got, "a YAML list in the stack file")]
        if decoded is None:
            return {}, []
        return decoded, []
    return raw, []


def _leaves(value: Any, schema_words: frozenset[str]) -> list[str]:
    """Every scalar in a parsed config value, and every mapping key that is user data, as text."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out += [str(k) for k in item if str(k) not in schema_words]
            stack += list(item.values())
        elif isinstance(item, list | tuple):
            stack += list(item)
        elif item is not None:
            out.append(str(item))
    return out


def _schema_words() -> frozenset[str]:
    words: set[str] = set()
    todo = [_unwrap(k.python_type) for k in KEYS]
    while todo:
        tp = todo.pop()
        for arg in typing.get_args(tp):
            todo.append(arg)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            hints = typing.get_type_hints(tp)
            for f in dataclasses.fields(tp):
                words.add(to_camel(f.name))
                todo.append(hints[f.name])
    return frozenset(words)


def secret_texts(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> list[str]:
    """Return every text that must not reach a message: each secret key's value and its parts."""
    words = _schema_words()
    texts: list[str] = []
    for name in secret_keys:
        if name not in raw or raw[name] is None:
            continue
        value = raw[name]
        texts.append(str(value))
        if isinstance(value, str):
            try:
                value = load_yaml(value)
            except YamlError:
                continue
        texts += _leaves(value, words)
    return texts


def _field_name(name: str) -> str:
    """A key as a message's field: quoted when it is empty or holds characters no key has."""
    return name if re.fullmatch(r"[A-Za-z0-9_.:-]+", name) else repr(name)


def namespace_problems(keys: typing.Iterable[str], project: str = PROJECT) -> list[Problem]:
    """Refuse config keys whose namespace is neither the project's nor a provider's or the engine's.

    ``celery-platfrom:namespace`` would otherwise be ignored, and the platform would go to the default
    namespace. Values are never shown: a misspelled key may well hold a secret.
    """
    allowed = (project, *OTHER_NAMESPACES)
    problems = []
    for full_key in sorted(keys):
        namespace, colon, _ = full_key.partition(":")
        if not colon:
            problems.append(
                Problem(
                    _field_name(full_key),
                    "config key without a namespace",
                    "a key with no ':'",
                    f"'{project}:{full_key}'" + (" (pulumi config set adds it)" if full_key else ""),
                )
            )
        elif namespace not in allowed:
            problems.append(
                Problem(
                    _field_name(full_key),
                    "unknown config namespace" + did_you_mean(namespace, allowed),
                    f"namespace {namespace!r}",
                    "one of " + ", ".join(f"'{n}:'" for n in allowed),
                )
            )
    return problems


def read_raw_config(project: str = PROJECT) -> dict[str, Any]:
    """Return this project's config keys (without the ``project:`` prefix) as Pulumi passes them."""
    merged = all_config()
    prefix = f"{project}:"
    return {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}


def all_config() -> dict[str, Any]:
    """Return every config key that the engine passed to the program, of every namespace."""
    return {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}


def _check_pool_count(pools: Sequence[PoolSpec]) -> list[Problem]:
    if len(pools) > MAX_POOLS:
        return [Problem("pools", "too many pools", f"{len(pools)} pools", f"at most {MAX_POOLS}")]
    return []


@functools.cache
def _adapter(python_type: Any) -> TypeAdapter[Any]:
    """Pydantic's validator for one key type, built once: building all of them took a sixth of a stack's render."""
    return TypeAdapter(python_type)


def parse_stack_config(
    raw: Mapping[str, Any],
    subject: str = f"{PROJECT} stack config",
    secret_keys: frozenset[str] = frozenset(),
) -> StackConfig:
    """Parse and check every key of ``raw``; return a StackConfig or raise one ValidationError.

    ``secret_keys`` names keys that the stack holds as secret (``--secret``, ``secure:``), besides the
    keys the schema declares secret. No part of their values appears in any message.
    """
    problems: list[Problem] = []
    known = {k.name: k for k in KEYS}
    hidden = frozenset(secret_keys) | {k.name for k in KEYS if k.secret}
    for name in sorted(set(raw) - set(known)):
        # Never the value: a misspelled secret key (databaseURL) holds a secret in plain text.
        value = raw[name]
        problems.append(
            Problem(
                _field_name(name),
                "unknown config key" + did_you_mean(name, known),
                f"a value of {len(str(value))} characters, not shown",
                "one of " + ", ".join(sorted(known)),
            )
        )
    values: dict[str, Any] = {}
    for key in KEYS:
        if key.name not in raw and key.default is REQUIRED:
            problems.append(Problem(key.name, "is required", "nothing", f"{key.description} (pulumi config set)"))
            continue
        secret = key.name in hidden
        decoded, decode_problems = _decode(key, raw.get(key.name, "" if key.default is UNSET else key.default), secret)
        problems += decode_problems
        if decode_problems:
            continue
        try:
            value = _adapter(key.python_type).validate_python(decoded)
        except PydanticError as err:
            problems += _from_pydantic(key, err, secret)
            continue
        except (ValueError, TypeError, ArithmeticError) as err:  # e.g. a Decimal too long to convert
            problems.append(Problem(key.name, f"cannot be read: {type(err).__name__}", "a value", key.description))
            continue
        rule = _RULES.get(key.name)
        problems += rule(key.name, value) if rule else []
        values[key.attribute] = value
    if problems:
        raise ValidationError(subject, mask_secrets(problems, secret_texts(raw, hidden)))
    if not isinstance(values["rotation"], Rotation):
        values["rotation"] = Rotation()
    config = StackConfig(**values, secret_keys=hidden)
    raise_if_any(subject, mask_secrets(admission_problems(config), secret_texts(raw, hidden)))
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
        rollout_timeout_seconds=config.rollout_timeout_seconds,
        pod=config.pod,
    )


def admission_problems(config: StackConfig) -> list[Problem]:
    """Check every pod of the stack against its LimitRange and ResourceQuota, and every queue for a pool."""
    settings = workload_settings(config)
    problems = settings.validate()
    if problems:
        return problems
    problems += broker_problems(config)
    if problems:
        return problems
    problems += pod_problems(settings, config.pools, config.beat)
    external = config.broker.external
    url = config.broker_url or None
    tls = external.broker_tls(url) if external is not None else None
    redis = None if external is not None else config.redis
    if tls is not None and config.monitoring.enabled:
        from celery_platform.resources.monitoring import TLS_EXPORTER_PROBLEM

        problems.append(TLS_EXPORTER_PROBLEM)
    problems += platform_problems(
        settings, redis, config.pools, config.beat, config.limit_range, config.quota, tls, monitoring_plans(config)
    )
    problems += check_routes(
        {p.name: p.queues for p in config.pools},
        config.queues,
        config.task_routes,
        idle_pools={p.name for p in config.pools if p.replicas == 0 and not is_autoscaled(p)},
    )
    if external is None:
        host = f"redis.{config.namespace}.svc.{config.cluster_domain}"
        if len(host) > 253:
            problems.append(
                Problem(
                    "clusterDomain", "makes the broker host longer than 253 characters", shown(host), "a shorter name"
                )
            )
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


def broker_problems(config: StackConfig) -> list[Problem]:
    """Check the external broker against the brokerUrl secret: one URL source, and what it implies."""
    if config.broker.external is None:
        if config.broker_url:
            return [Problem("brokerUrl", "is set, but broker.type is redis", redacted(config.broker_url), "unset")]
        return []
    external = config.broker.external
    url = config.broker_url or None
    problems = external.validate("broker.external", url, url_given=url is not None)
    return problems + external.autoscaling_problems("broker.external", config.pools)


def load_stack_config() -> StackConfig:
    """Read this stack's config from the Pulumi runtime and validate it, every namespace included."""
    subject = f"{PROJECT} stack config of stack {pulumi.get_stack()!r}"
    raise_if_any(subject, namespace_problems(all_config()))
    raw = read_raw_config()
    secret_keys = frozenset(k for k in raw if pulumi.runtime.config.is_config_secret(f"{PROJECT}:{k}"))
    plain = plain_secret_problems(raw, secret_keys)
    try:
        config = parse_stack_config(raw, subject, secret_keys)
    except ValidationError as err:
        raise ValidationError(subject, [*plain, *err.problems]) from None
    raise_if_any(subject, plain)
    return config


def plain_secret_problems(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> list[Problem]:
    """Refuse a secret key whose value the stack holds in plain text.

    The engine enforces ``secret: true`` only for keys that Pulumi.yaml declares; the optional
    secrets are undeclared (see UNSET), so a ``pulumi config set sentryDsn ...`` without ``--secret``
    would put a credential in the committed stack file in plain text. The value is never shown.
    """
    return [
        Problem(
            key.name,
            "a secret set in plain text in the stack file",
            "a plain-text value",
            f"an encrypted value: pulumi config set --secret {key.name} ...",
        )
        for key in KEYS
        if key.secret and raw.get(key.name) and key.name not in secret_keys
    ]
