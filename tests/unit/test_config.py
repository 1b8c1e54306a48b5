"""The stack config schema: each documented failure is refused with a message naming field and value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from celery_platform.config.keys import KEYS, REQUIRED, UNSET, Key
from celery_platform.config.problems import ValidationError
from celery_platform.config.project_file import with_config_block
from celery_platform.config.stack import parse_stack_config, read_stack_config

ROOT = Path(__file__).resolve().parents[2]
VALID: dict[str, Any] = {
    "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
    "image": "registry.example.com/app:1.0.0",
    "pools": "- {name: main, queues: [default]}",
}


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_stack_config({**VALID, **raw})
    return [str(p) for p in caught.value.problems]


def test_a_config_with_only_the_required_keys_takes_every_default() -> None:
    config = parse_stack_config(VALID)
    assert config.namespace == "celery-platform"
    assert config.limit_range.max_limit_request_ratio.cpu == 2
    assert config.sentry_dsn is None


def test_the_init_container_default_in_pulumi_yaml_is_the_components_default() -> None:
    from celery_platform.config.workload import WorkloadSettings

    assert parse_stack_config(VALID).init_resources == WorkloadSettings(image="x:1", app="a").init_resources


def test_fails_when_the_init_container_cannot_fit_a_tight_limit_range() -> None:
    messages = problems_of(
        {
            "limitRange": "maxLimitRequestRatio: {cpu: 1.5}\ndefault: {cpu: 150m, memory: 256Mi}",
            "pools": "- {name: main, queues: [default], resources: {requests: {cpu: 100m, memory: 256Mi}, "
            "limits: {cpu: 150m, memory: 512Mi}}}",
            "beat": "resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 150m, memory: 256Mi}}",
            "redis": "resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 150m, memory: 512Mi}}",
        }
    )
    assert any(m.startswith("initResources.cpu: limit/request ratio") for m in messages)
    fixed = {
        "limitRange": "maxLimitRequestRatio: {cpu: 1.5}\ndefault: {cpu: 150m, memory: 256Mi}",
        "pools": "- {name: main, queues: [default], resources: {requests: {cpu: 100m, memory: 256Mi}, "
        "limits: {cpu: 150m, memory: 512Mi}}}",
        "beat": "resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 150m, memory: 256Mi}}",
        "redis": "resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 150m, memory: 512Mi}}",
        "initResources": "{requests: {cpu: 20m, memory: 16Mi}, limits: {cpu: 30m, memory: 32Mi}}",
        # The metrics exporter is admitted by the same LimitRange.
        "monitoring": "resources: {requests: {cpu: 50m, memory: 96Mi}, limits: {cpu: 75m, memory: 192Mi}}",
    }
    assert parse_stack_config({**VALID, **fixed}).init_resources.limits.cpu == "30m"


def test_fails_when_a_key_is_unknown() -> None:
    [message] = problems_of({"replicaCount": "3"})
    assert message.startswith(
        "replicaCount: unknown config key (got a value of 1 characters, not shown, expected one of "
    )


def test_fails_when_a_nested_key_is_unknown_and_lists_the_allowed_ones() -> None:
    [message] = problems_of({"limitRange": "maxRatio: {cpu: 2}"})
    assert message.startswith("limitRange.maxRatio: unknown key")
    assert "maxLimitRequestRatio" in message


def test_fails_when_a_value_has_the_wrong_type() -> None:
    [message] = problems_of({"longestTaskSeconds": "often"})
    assert message == "longestTaskSeconds: input should be a valid integer, unable to parse string as an integer " + (
        "(got 'often', expected a whole number)"
    )


def test_fails_when_a_count_is_negative() -> None:
    messages = problems_of({"rotation": "{redisPassword: -1}", "quota": "pods: -3"})
    assert "rotation.redisPassword: too small (got -1, expected a whole number >= 0)" in messages
    assert "quota.pods: a count cannot be negative (got -3, expected a whole number >= 0)" in messages


def test_fails_when_a_quantity_is_malformed() -> None:
    [message] = problems_of({"limitRange": "max: {cpu: 400mm, memory: 1Gi}"})
    assert message.startswith("limitRange.max.cpu: not a CPU quantity")
    assert "'400mm'" in message


def test_fails_when_the_limit_range_ratio_is_below_one() -> None:
    [message] = problems_of({"limitRange": "maxLimitRequestRatio: {cpu: 0.5}"})
    assert message == (
        "limitRange.maxLimitRequestRatio.cpu: a limit/request ratio below 1 admits no container "
        "(got 0.5, expected a number >= 1)"
    )


def test_fails_when_the_limit_range_defaults_break_its_own_ratio() -> None:
    [message] = problems_of({"limitRange": "maxLimitRequestRatio: {cpu: 1.5}"})
    assert message.startswith("limitRange.default.cpu: the defaults alone break maxLimitRequestRatio")


def test_fails_when_the_sentry_dsn_is_malformed_without_echoing_it() -> None:
    [message] = problems_of({"sentryDsn": "https://sentry.example.com/12"})
    assert message.startswith("sentryDsn: not a valid Sentry DSN (got secret shaped ")
    assert "https://KEY@HOST/PROJECT" in message
    assert "sentry.example.com" not in message


def test_fails_when_the_database_is_not_postgres() -> None:
    [message] = problems_of({"databaseUrl": "mysql://app:pw@db/app"})
    assert message.startswith("databaseUrl: not a PostgreSQL URL")
    assert "pw" not in message


def test_fails_when_the_database_url_is_missing() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_stack_config({})
    assert [p.field for p in caught.value.problems] == ["image", "pools", "databaseUrl"]


def test_every_problem_is_reported_at_once() -> None:
    messages = problems_of(
        {
            "namespace": "Celery_Prod",
            "limitRange": "maxLimitRequestRatio: {cpu: 0.5}",
            "sentryDsn": "nope",
            "databaseUrl": "sqlite:///db",
            "quota": "limitsCpu: 8cores",
        }
    )
    fields = sorted(m.split(":")[0] for m in messages)
    assert fields == ["databaseUrl", "limitRange.maxLimitRequestRatio.cpu", "namespace", "quota.limitsCpu", "sentryDsn"]


def test_pulumi_yaml_declares_every_key_as_generated_from_the_args() -> None:
    text = (ROOT / "Pulumi.yaml").read_text()
    assert text == with_config_block(text), "Pulumi.yaml is stale: run `make pulumi-yaml`"
    declared = yaml.safe_load(text)["config"]
    assert set(declared) == {k.name for k in KEYS if k.declared}
    for key in (k for k in KEYS if k.declared):
        assert declared[key.name]["type"] == key.pulumi_type, key.name
        assert declared[key.name]["description"] == key.description, key.name
        assert ("default" in declared[key.name]) == (key.default is not REQUIRED), key.name


@pytest.mark.parametrize("key", [k for k in KEYS if k.declared and k.default is not REQUIRED], ids=lambda k: k.name)
def test_every_declared_default_reads_back_as_the_fields_own_default(key: Key) -> None:
    # The engine copies a declared default into the stack: the program must read it as the field's default.
    default = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"][key.name]["default"]
    args = read_stack_config({**VALID, key.name: json.dumps(default) if key.structured else str(default)})
    assert getattr(args, key.attribute) == key.default, key.name


def test_no_secret_key_has_a_default_that_the_engine_would_copy_in_plain_text() -> None:
    # `pulumi preview` on a fresh stack refused every `secret: true` key with a `default:`:
    # "configuration key 'djangoSecretKey' must be encrypted as it's secret".
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert [name for name, decl in declared.items() if decl.get("secret") and "default" in decl] == []


def test_every_optional_secret_is_left_out_of_pulumi_yaml_and_named_in_its_comment() -> None:
    text = (ROOT / "Pulumi.yaml").read_text()
    for key in KEYS:
        if not key.declared:
            assert key.secret == (key.default is UNSET), key.name
            assert f"#   {key.name}: {key.description}" in text, key.name


def test_only_the_optional_secrets_are_undeclared() -> None:
    assert sorted(k.name for k in KEYS if not k.declared) == [
        "brokerUrl",
        "djangoSecretKey",
        "fieldEncryptionKey",
        "redisPassword",
        "sentryDsn",
    ]


def test_an_optional_secret_left_unset_means_generated_or_absent() -> None:
    config = parse_stack_config(VALID)
    assert (config.sentry_dsn, config.django_secret_key, config.field_encryption_key, config.redis_password) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_file_holds_only_known_keys_and_no_plain_secret(stack: str) -> None:
    values = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    known = {f"celery-platform:{k.name}": k for k in KEYS}
    for full_key, value in values.items():
        assert full_key in known, full_key
        if known[full_key].secret:
            assert isinstance(value, dict) and "secure" in value, f"{full_key} must be set with --secret"


def test_fails_when_the_rollout_timeout_leaves_no_time_to_roll_out() -> None:
    assert problems_of({"rolloutTimeoutSeconds": "5"}) == [
        "rolloutTimeoutSeconds: too small (got 5, expected a whole number >= 30)"
    ]


def test_the_rollout_timeout_reaches_the_workers_settings() -> None:
    config = parse_stack_config({**VALID, "rolloutTimeoutSeconds": "90"})
    assert config.workload_settings().rollout_timeout_seconds == 90
