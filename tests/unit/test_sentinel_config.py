"""``broker.type: sentinel`` settings: each rule of SentinelSpec, the broker choice, and the stack loader.

Every rule is checked to name its field, the value given and what is allowed; the property tests hold the
validator against an oracle written from the fields' docstrings, over every integer field at once, so that
one bad field can hide no other field's problem.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celery_platform.config.broker import BrokerChoice, ExternalBrokerSpec
from celery_platform.config.placement import SpreadConstraint
from celery_platform.config.problems import Problem, ValidationError
from celery_platform.config.sentinel import (
    MAX_REPLICAS,
    MAX_SENTINELS,
    MIN_SENTINELS,
    SentinelSpec,
    persistence_problems,
)
from celery_platform.config.specs import RedisSpec, pod_resources
from celery_platform.config.stack import parse_stack_config

F = "broker.sentinel"
VALID: dict[str, Any] = {
    "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
    "image": "registry.example.com/app:1.0.0",
    "pools": "- {name: main, queues: [default]}",
}
PERSISTENT = "{persistent: true}"


def problems_of(raw: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        parse_stack_config({**VALID, **raw})
    return list(caught.value.problems)


def by_field(problems: list[Problem]) -> dict[str, Problem]:
    found = {p.field: p for p in problems}
    assert len(found) == len(problems), f"one problem per field: {problems}"
    return found


# --------------------------------------------------------------------------- each rule


def test_the_defaults_are_valid_and_describe_one_primary_two_replicas_and_three_sentinels() -> None:
    spec = SentinelSpec()
    assert spec.validate(F) == []
    assert (spec.replicas, spec.sentinels, spec.effective_quorum(), spec.master_name) == (2, 3, 2, "celery")
    assert spec.min_replicas_to_write == 1 <= spec.replicas - 1
    assert spec.failover_timeout_milliseconds >= 4 * spec.down_after_milliseconds


@pytest.mark.parametrize(
    ("changes", "field", "got", "allowed"),
    [
        ({"replicas": 0}, "replicas", "0", ">= 1"),
        ({"replicas": MAX_REPLICAS + 1}, "replicas", "9", "<= 8"),
        ({"sentinels": 2}, "sentinels", "2", ">= 3"),
        ({"sentinels": MAX_SENTINELS + 1}, "sentinels", "10", "<= 9"),
        ({"quorum": 0}, "quorum", "0", ">= 1"),
        ({"quorum": 10, "sentinels": 9}, "quorum", "10", "<= 9"),
        ({"quorum": 4}, "quorum", "4", "1 to 3"),
        ({"master_name": ""}, "masterName", "''", "celery"),
        ({"master_name": "m" * 65}, "masterName", "'" + "m" * 20, "celery"),
        ({"master_name": "my master"}, "masterName", "'my master'", "celery"),
        ({"master_name": "a/b"}, "masterName", "'a/b'", "celery"),
        ({"down_after_milliseconds": 999}, "downAfterMilliseconds", "999", ">= 1000"),
        ({"down_after_milliseconds": 600001}, "downAfterMilliseconds", "600001", "<= 600000"),
        ({"failover_timeout_milliseconds": 999}, "failoverTimeoutMilliseconds", "999", ">= 1000"),
        ({"failover_timeout_milliseconds": 19999}, "failoverTimeoutMilliseconds", "19999", "at least 20000"),
        ({"min_replicas_to_write": -1}, "minReplicasToWrite", "-1", ">= 0"),
        ({"min_replicas_to_write": 2}, "minReplicasToWrite", "2", "0 to 1 (replicas - 1)"),
        ({"replicas": 1}, "minReplicasToWrite", "1", "0 to 0 (replicas - 1)"),
        ({"min_replicas_max_lag_seconds": 0}, "minReplicasMaxLagSeconds", "0", ">= 1"),
        ({"min_replicas_max_lag_seconds": 3601}, "minReplicasMaxLagSeconds", "3601", "<= 3600"),
        (
            {"resources": pod_resources("100m", "64Mi", "50m", "64Mi")},
            "resources.limits.cpu",
            "'50m'",
            "at least '100m'",
        ),
        (
            {"topology_spread": (SpreadConstraint(topology_key="kubernetes.io/hostname", max_skew=0),)},
            "topologySpread[0].maxSkew",
            "0",
            ">= 1",
        ),
    ],
)
def test_fails_when_a_setting_breaks_its_rule_naming_field_value_and_what_is_allowed(
    changes: dict[str, Any], field: str, got: str, allowed: str
) -> None:
    [problem] = SentinelSpec(**changes).validate(F)
    assert problem.field == f"{F}.{field}"
    assert problem.got.startswith(got), problem
    assert allowed in problem.expected, problem
    assert str(problem).startswith(f"{F}.{field}: ")


def test_a_quorum_up_to_the_sentinels_and_a_failover_timeout_of_exactly_four_times_are_accepted() -> None:
    assert SentinelSpec(sentinels=5, quorum=5).validate(F) == []
    assert SentinelSpec(quorum=1).validate(F) == []
    assert SentinelSpec(down_after_milliseconds=15000, failover_timeout_milliseconds=60000).validate(F) == []
    assert SentinelSpec(replicas=1, min_replicas_to_write=0).validate(F) == []
    assert SentinelSpec(replicas=MAX_REPLICAS, min_replicas_to_write=MAX_REPLICAS - 1).validate(F) == []


def test_the_default_quorum_is_a_majority_of_the_sentinels() -> None:
    assert [SentinelSpec(sentinels=n).effective_quorum() for n in range(3, 10)] == [2, 3, 3, 4, 4, 5, 5]
    assert SentinelSpec(sentinels=5, quorum=2).effective_quorum() == 2


# --------------------------------------------------------------------------- properties


def oracle(spec: SentinelSpec) -> set[str]:
    """The fields a spec's integers break, from the docstrings alone: each rule on its own."""
    wrong = set()
    replicas_ok = 1 <= spec.replicas <= MAX_REPLICAS
    sentinels_ok = MIN_SENTINELS <= spec.sentinels <= MAX_SENTINELS
    if not replicas_ok:
        wrong.add("replicas")
    if not sentinels_ok:
        wrong.add("sentinels")
    if spec.quorum is not None and not (
        1 <= spec.quorum <= MAX_SENTINELS and (not sentinels_ok or spec.quorum <= spec.sentinels)
    ):
        wrong.add("quorum")
    down_ok = 1000 <= spec.down_after_milliseconds <= 600000
    if not down_ok:
        wrong.add("downAfterMilliseconds")
    timeout = spec.failover_timeout_milliseconds
    if timeout < 1000 or (down_ok and timeout < 4 * spec.down_after_milliseconds):
        wrong.add("failoverTimeoutMilliseconds")
    to_write = spec.min_replicas_to_write
    if not (0 <= to_write <= MAX_REPLICAS) or (replicas_ok and to_write > spec.replicas - 1):
        wrong.add("minReplicasToWrite")
    if not 1 <= spec.min_replicas_max_lag_seconds <= 3600:
        wrong.add("minReplicasMaxLagSeconds")
    return wrong


specs = st.builds(
    SentinelSpec,
    replicas=st.integers(-2, MAX_REPLICAS + 3),
    sentinels=st.integers(0, MAX_SENTINELS + 3),
    quorum=st.none() | st.integers(-1, MAX_SENTINELS + 3),
    down_after_milliseconds=st.integers(0, 700000),
    failover_timeout_milliseconds=st.integers(0, 3000000),
    min_replicas_to_write=st.integers(-2, MAX_REPLICAS + 3),
    min_replicas_max_lag_seconds=st.integers(-1, 4000),
)


@given(specs)
def test_every_integer_rule_is_reported_on_its_own_whatever_the_other_fields_hold(spec: SentinelSpec) -> None:
    problems = spec.validate(F)
    assert {p.field.removeprefix(F + ".") for p in problems} == oracle(spec)
    for problem in problems:
        assert problem.field.startswith(F + ".") and problem.got and problem.expected, problem


@st.composite
def documented_specs(draw: st.DrawFn) -> SentinelSpec:
    """Any spec inside every documented bound and relation."""
    replicas = draw(st.integers(1, MAX_REPLICAS))
    sentinels = draw(st.integers(MIN_SENTINELS, MAX_SENTINELS))
    down = draw(st.integers(1000, 600000))
    return SentinelSpec(
        replicas=replicas,
        sentinels=sentinels,
        quorum=draw(st.none() | st.integers(1, sentinels)),
        down_after_milliseconds=down,
        failover_timeout_milliseconds=draw(st.integers(4 * down, 4 * down + 10**7)),
        min_replicas_to_write=draw(st.integers(0, replicas - 1)),
        min_replicas_max_lag_seconds=draw(st.integers(1, 3600)),
    )


@given(documented_specs())
def test_every_spec_within_the_documented_bounds_is_accepted_and_survives_losing_one_of_each(
    spec: SentinelSpec,
) -> None:
    assert spec.validate(F) == []
    assert 1 <= spec.effective_quorum() <= spec.sentinels
    # A majority of the Sentinels survives one lost Sentinel; one replica may restart without stopping writes.
    assert spec.sentinels - 1 >= spec.sentinels // 2 + 1
    assert spec.min_replicas_to_write <= spec.replicas - 1


@given(
    st.integers(1, MAX_REPLICAS),
    st.integers(MIN_SENTINELS, MAX_SENTINELS),
    st.data(),
)
def test_a_quorum_is_accepted_exactly_from_1_to_the_sentinels(replicas: int, sentinels: int, data: Any) -> None:
    quorum = data.draw(st.integers(-1, MAX_SENTINELS + 2))
    problems = SentinelSpec(replicas=replicas, sentinels=sentinels, quorum=quorum, min_replicas_to_write=0).validate(F)
    assert (problems == []) == (1 <= quorum <= sentinels), problems


# --------------------------------------------------------------------------- broker choice


def test_type_sentinel_without_settings_takes_every_default() -> None:
    assert BrokerChoice(type="sentinel").sentinel_spec() == SentinelSpec()
    assert BrokerChoice(type="sentinel").validate("broker") == []
    assert BrokerChoice(type="redis").sentinel_spec() is None
    assert BrokerChoice().sentinel_spec() is None


@pytest.mark.parametrize("kind", ["redis", "external"])
def test_fails_when_the_sentinel_key_is_set_with_another_type(kind: str) -> None:
    external = ExternalBrokerSpec(host="10.0.0.1") if kind == "external" else None
    [problem] = BrokerChoice(type=kind, sentinel=SentinelSpec(), external=external).validate("broker")
    assert (problem.field, problem.got, problem.expected) == ("broker.sentinel", "a mapping", "type: sentinel")
    assert f"type is {kind}" in problem.problem


def test_fails_when_the_external_key_is_set_with_type_sentinel() -> None:
    [problem] = BrokerChoice(type="sentinel", external=ExternalBrokerSpec(host="10.0.0.1")).validate("broker")
    assert (problem.field, problem.expected) == ("broker.external", "type: external")


def test_the_sentinel_settings_are_checked_through_the_broker_choice() -> None:
    problems = BrokerChoice(type="sentinel", sentinel=SentinelSpec(sentinels=2, replicas=0)).validate("broker")
    assert {p.field for p in problems} == {"broker.sentinel.sentinels", "broker.sentinel.replicas"}


def test_fails_when_the_broker_type_is_unknown_and_sentinel_is_named_among_the_allowed() -> None:
    [problem] = BrokerChoice(type="sentinels").validate("broker")
    assert problem.field == "broker.type" and "sentinel" in problem.expected.split(" or ")


def test_fails_when_redis_is_not_persistent_with_sentinel() -> None:
    [problem] = persistence_problems(RedisSpec(persistent=False))
    assert (problem.field, problem.got, problem.expected) == ("redis.persistent", "false", "true")
    assert persistence_problems(RedisSpec(persistent=True)) == []


# --------------------------------------------------------------------------- the stack loader


def test_the_stack_loader_reads_every_sentinel_setting_from_the_stack_file() -> None:
    broker = (
        "type: sentinel\n"
        "sentinel:\n"
        "  replicas: 3\n  sentinels: 5\n  quorum: 3\n  masterName: orders\n"
        "  downAfterMilliseconds: 2000\n  failoverTimeoutMilliseconds: 10000\n"
        "  minReplicasToWrite: 2\n  minReplicasMaxLagSeconds: 5\n"
        "  resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {cpu: 40m, memory: 64Mi}}\n"
        "  topologySpread: [{topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule}]\n"
    )
    config = parse_stack_config({**VALID, "broker": broker, "redis": PERSISTENT})
    assert config.broker.sentinel_spec() == SentinelSpec(
        replicas=3,
        sentinels=5,
        quorum=3,
        master_name="orders",
        down_after_milliseconds=2000,
        failover_timeout_milliseconds=10000,
        min_replicas_to_write=2,
        min_replicas_max_lag_seconds=5,
        resources=pod_resources("20m", "32Mi", "40m", "64Mi"),
        topology_spread=(SpreadConstraint(topology_key="kubernetes.io/hostname", when_unsatisfiable="DoNotSchedule"),),
    )


def test_the_stack_loader_gives_type_sentinel_alone_every_default() -> None:
    config = parse_stack_config({**VALID, "broker": "{type: sentinel}", "redis": PERSISTENT})
    assert config.broker.type == "sentinel" and config.broker.sentinel is None
    assert config.broker.sentinel_spec() == SentinelSpec()


def test_fails_when_a_sentinel_key_is_unknown_and_lists_the_known_ones() -> None:
    [problem] = problems_of({"broker": "{type: sentinel, sentinel: {replica: 3}}", "redis": PERSISTENT})
    assert problem.field == "broker.sentinel.replica"
    assert problem.problem.startswith("unknown key; did you mean 'replicas'?")
    assert "minReplicasToWrite" in problem.expected and "masterName" in problem.expected


def test_fails_when_a_sentinel_count_is_not_a_number() -> None:
    [problem] = problems_of({"broker": "{type: sentinel, sentinel: {sentinels: three}}", "redis": PERSISTENT})
    assert (problem.field, problem.got) == ("broker.sentinel.sentinels", "'three'")


@pytest.mark.parametrize(("kind", "extra"), [("redis", {}), ("external", {"brokerUrl": "redis://:pw@10.0.0.1:6379/0"})])
def test_fails_when_a_stack_sets_sentinel_settings_with_another_broker_type(kind: str, extra: dict[str, str]) -> None:
    external = ", external: {host: 10.0.0.1}" if kind == "external" else ""
    problems = problems_of({"broker": f"{{type: {kind}, sentinel: {{replicas: 3}}{external}}}", **extra})
    assert [p.field for p in problems] == ["broker.sentinel"]


def test_fails_when_a_sentinel_stack_keeps_redis_ephemeral() -> None:
    [problem] = problems_of({"broker": "{type: sentinel}", "redis": "{persistent: false}"})
    assert str(problem).startswith("redis.persistent: must be true with broker.type sentinel")


def test_a_stack_reports_every_sentinel_problem_at_once() -> None:
    problems = problems_of(
        {"broker": "{type: sentinel, sentinel: {replicas: 0, quorum: 7, masterName: 'a b'}}", "redis": PERSISTENT}
    )
    assert {p.field for p in problems} == {
        "broker.sentinel.replicas",
        "broker.sentinel.quorum",
        "broker.sentinel.masterName",
    }
