"""Admission arithmetic of ``broker.type: sentinel``: 1 + N data nodes, S Sentinels and the nodes' claims.

The prod stack file is loaded as `pulumi preview` loads it, with ``broker: {type: sentinel}`` and quota
or resources changed; each count is written out here from the topology, not read back from the code.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_platform.builders.admission import check_quota
from celery_platform.config.broker import BrokerChoice, ExternalBrokerSpec
from celery_platform.config.guardrails import QUOTA_FIELDS, QuotaSpec
from celery_platform.config.platform import broker_plans
from celery_platform.config.problems import Problem, ValidationError
from celery_platform.config.sentinel import MAX_REPLICAS, MAX_SENTINELS, MIN_SENTINELS
from celery_platform.config.stack import parse_stack_config
from celery_platform.render.stack_files import stack_config

# prod's Celery pods at worst: main 3 + 1 surge, beat 1, the exporter 1.
PROD_CELERY_PODS = 3 + 1 + 1 + 1
PROD_STORAGE_GI = 5  # redis.storageSize of Pulumi.prod.yaml
SENTINEL_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}


def prod(**overrides: Any) -> dict[str, str]:
    config, _ = stack_config("prod")
    raw = {key.split(":", 1)[1]: value for key, value in config.items()}
    quota = {**json.loads(raw["quota"]), **overrides.pop("quota", {})}
    return {**raw, "quota": json.dumps(quota), **{k: json.dumps(v) for k, v in overrides.items()}}


def refusal(raw: dict[str, str]) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        parse_stack_config(raw)
    return list(caught.value.problems)


def sentinel(**settings_: Any) -> dict[str, Any]:
    return {"type": "sentinel", **({"sentinel": settings_} if settings_ else {})}


def test_the_committed_prod_stack_admits_sentinel_with_four_claims() -> None:
    args = parse_stack_config(prod(broker=sentinel(), quota={"persistentVolumeClaims": 4}))
    [nodes, sentinels] = broker_plans(args)
    assert (nodes.owner, nodes.replicas, nodes.surge, nodes.claims) == ("redis", 3, 0, ("5Gi",))
    assert (sentinels.owner, sentinels.replicas, sentinels.surge, sentinels.claims) == ("broker.sentinel", 3, 0, ())


def test_fails_when_prod_keeps_two_claims_for_three_data_nodes_naming_the_quota_field() -> None:
    [problem] = refusal(prod(broker=sentinel()))
    assert problem.field == "quota.persistentVolumeClaims"
    assert (problem.got, problem.expected) == ("3 (redis 3)", "at most 2")


def test_every_quota_line_names_the_field_that_sets_it() -> None:
    names = {
        "".join(w.title() if i else w for i, w in enumerate(f.name.split("_"))) for f in dataclasses.fields(QuotaSpec)
    }
    assert set(QUOTA_FIELDS) == set(QuotaSpec().hard())
    assert set(QUOTA_FIELDS.values()) == names


# No deadline: each example loads the whole prod stack four times; the counts are the point, not the time.
@settings(max_examples=25, deadline=None)
@given(st.integers(1, MAX_REPLICAS), st.integers(MIN_SENTINELS, MAX_SENTINELS))
def test_the_quota_counts_one_primary_n_replicas_s_sentinels_and_a_claim_per_node(
    replicas: int, sentinels: int
) -> None:
    topology = sentinel(replicas=replicas, sentinels=sentinels, minReplicasToWrite=0)
    pods = PROD_CELERY_PODS + replicas + 1 + sentinels
    claims = replicas + 1
    exact = {"pods": pods, "persistentVolumeClaims": claims, "requestsStorage": f"{claims * PROD_STORAGE_GI}Gi"}
    parse_stack_config(prod(broker=topology, quota=exact))
    fields = {
        "pods": {"pods": pods - 1},
        "persistentVolumeClaims": {"persistentVolumeClaims": claims - 1},
        "requestsStorage": {"requestsStorage": f"{claims * PROD_STORAGE_GI - 1}Gi"},
    }
    for field, short in fields.items():
        [problem] = refusal(prod(broker=topology, quota={**exact, **short}))
        assert problem.field == f"quota.{field}"
        if field == "pods":
            assert f"redis {replicas + 1}" in problem.got and f"broker.sentinel {sentinels}" in problem.got


def test_the_sentinels_requests_count_against_the_quota_beside_the_data_nodes() -> None:
    args = parse_stack_config(prod(broker=sentinel(), quota={"persistentVolumeClaims": 4}))
    plans = broker_plans(args)
    # 3 data nodes of 200m and 3 Sentinels of 50m requested: 750m; a quota of 749m refuses them alone.
    tight = QuotaSpec(requests_cpu="749m", limits_cpu="100", requests_memory="100Gi", limits_memory="100Gi")
    [problem] = check_quota(plans, tight, args.limit_range)
    assert problem.field == "quota.requestsCpu"
    assert problem.got == "750m (redis 3 x 200m; broker.sentinel 3 x 50m)", problem
    assert check_quota(plans, dataclasses.replace(tight, requests_cpu="750m"), args.limit_range) == []


def test_fails_when_the_sentinels_resources_break_the_limit_range_ratio_naming_their_field() -> None:
    broken = {**SENTINEL_RESOURCES, "limits": {"cpu": "150m", "memory": "64Mi"}}
    [problem] = refusal(prod(broker=sentinel(resources=broken), quota={"persistentVolumeClaims": 4}))
    assert str(problem) == (
        "broker.sentinel.resources.cpu: limit/request ratio is above the LimitRange maxLimitRequestRatio "
        "(got 150m/50m = 3, expected at most 2)"
    )


def test_fails_when_the_sentinels_resources_exceed_the_limit_range_max_or_min() -> None:
    big = {"requests": {"cpu": "2", "memory": "32Mi"}, "limits": {"cpu": "3", "memory": "64Mi"}}
    problems = refusal(prod(broker=sentinel(resources=big), quota={"persistentVolumeClaims": 4}))
    assert [p.field for p in problems if p.field.startswith("broker.")] == ["broker.sentinel.resources.limits.cpu"]
    small = {"requests": {"cpu": "5m", "memory": "32Mi"}, "limits": {"cpu": "10m", "memory": "64Mi"}}
    [problem] = refusal(prod(broker=sentinel(resources=small), quota={"persistentVolumeClaims": 4}))
    assert (problem.field, problem.expected) == ("broker.sentinel.resources.requests.cpu", ">= 10m")


def test_fails_when_the_data_nodes_break_the_ratio_naming_the_redis_resources_once() -> None:
    redis = {
        "persistent": True,
        "storageSize": "5Gi",
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "400m", "memory": "1Gi"}},
    }
    [problem] = refusal(prod(broker=sentinel(), redis=redis, quota={"persistentVolumeClaims": 4}))
    assert problem.field == "redis.resources.cpu"


def test_our_standalone_redis_counts_one_pod_and_an_external_broker_none() -> None:
    args = parse_stack_config(prod())
    [redis] = broker_plans(args)
    assert (redis.owner, redis.replicas, redis.claims) == ("redis", 1, ("5Gi",))
    external = BrokerChoice(type="external", external=ExternalBrokerSpec(host="10.20.0.5"))
    assert broker_plans(dataclasses.replace(args, broker=external)) == []
