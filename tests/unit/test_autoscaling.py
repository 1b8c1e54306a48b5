"""Autoscaling with KEDA: the ScaledObject and TriggerAuthentication, the worst-case quota, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from kombu.transport.redis import PRIORITY_STEPS, Channel

from celery_platform.builders.admission import check_quota
from celery_platform.builders.broker import url_secret_data
from celery_platform.builders.celery_pods import celery_plans
from celery_platform.config.autoscaling import (
    KOMBU_PRIORITY_STEPS,
    AutoscalingSpec,
    BrokerAuth,
    SentinelTarget,
    all_at_zero_warning,
    name_problems,
    priority_lists,
    scaled_object_spec,
    trigger_authentication_spec,
)
from celery_platform.config.broker import ExternalBrokerSpec
from celery_platform.config.env import KeyRef
from celery_platform.config.guardrails import QuotaSpec
from celery_platform.config.problems import ValidationError
from celery_platform.config.specs import BeatSpec, PoolSpec, RedisSpec
from celery_platform.config.workload import WorkloadSettings
from celery_platform.render import render_documents
from celery_platform.render.mocks import RenderMocks
from celery_platform.resources.broker import ExternalBroker, ExternalBrokerArgs
from celery_platform.resources.namespace import NamespaceArgs, PlatformNamespace
from celery_platform.resources.redis import RedisBroker, RedisBrokerArgs
from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
from celery_platform.resources.workers import CeleryWorkers, CeleryWorkersArgs
from tests.conftest import objects_of, run

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = WorkloadSettings(image="registry.example.com/app:1.2.3", app="proj")
QUEUE_NAMES = st.from_regex(r"[a-z][a-z0-9_.-]{0,14}", fullmatch=True)


def scaled(name: str = "main", queues: tuple[str, ...] = ("default", "high"), **scaling: Any) -> PoolSpec:
    return PoolSpec(
        name=name, queues=queues, concurrency=2, autoscaling=AutoscalingSpec(**{"max_replicas": 5, **scaling})
    )


def platform(pools: list[PoolSpec], broker: str = "redis", **external: Any) -> dict[str, Any]:
    namespace = PlatformNamespace("plat", NamespaceArgs(name="team-a"))
    secrets = PlatformSecrets("keys", SecretsArgs(namespace=namespace.name, database_url="postgresql://u:p@db/app"))
    chosen: Any
    if broker == "redis":
        chosen = RedisBroker("redis", RedisBrokerArgs(namespace=namespace.name, secrets=secrets, spec=RedisSpec()))
    else:
        spec = ExternalBrokerSpec(**{"host": "10.0.0.5", **external.pop("spec", {})})
        chosen = ExternalBroker("broker", ExternalBrokerArgs(namespace=namespace.name, spec=spec, **external))
    workers = CeleryWorkers(
        "celery",
        CeleryWorkersArgs(
            namespace=namespace.name,
            secrets=secrets,
            broker=chosen,
            settings=SETTINGS,
            pools=pools,
            limit_range=namespace.limit_range,
        ),
    )
    return {"broker": chosen, "workers": workers}


def kombu_lists(queue: str, steps: tuple[int, ...]) -> set[str]:
    """Every list kombu's own Channel._q_for_pri names for ``queue``, over every priority 0..9."""
    channel = SimpleNamespace(sep=Channel.sep, priority_steps=list(steps))
    channel.priority = lambda n: Channel.priority(channel, n)  # type: ignore[attr-defined]
    return {Channel._q_for_pri(channel, queue, pri) for pri in range(10)}  # type: ignore[arg-type]


def test_our_priority_steps_and_separator_are_kombus() -> None:
    assert tuple(PRIORITY_STEPS) == KOMBU_PRIORITY_STEPS
    assert priority_lists("default", KOMBU_PRIORITY_STEPS) == [
        "default",
        "default\x06\x163",
        "default\x06\x166",
        "default\x06\x169",
    ]


@given(
    queues=st.lists(QUEUE_NAMES, min_size=1, max_size=4, unique=True),
    steps=st.sets(st.integers(1, 9), max_size=9).map(lambda s: (0, *sorted(s))),
    concurrency=st.integers(1, 16),
    backlog=st.none() | st.integers(1, 100),
)
def test_the_triggers_cover_every_list_kombu_uses_once_and_the_formula_adds_them_all(
    queues: list[str], steps: tuple[int, ...], concurrency: int, backlog: int | None
) -> None:
    pool = PoolSpec(
        name="p",
        queues=tuple(queues),
        concurrency=concurrency,
        autoscaling=AutoscalingSpec(max_replicas=3, priority_steps=steps, backlog_per_replica=backlog),
    )
    assert pool.validate("pools[0]") == []
    spec = scaled_object_spec("celery-p", pool, address="redis:6379", database=0, tls=False, auth_name="auth")
    triggers = spec["triggers"]
    names = [t["metadata"]["listName"] for t in triggers]
    assert sorted(names) == sorted({name for q in queues for name in kombu_lists(q, steps)})
    assert len(names) == len(set(names))
    formula = spec["advanced"]["scalingModifiers"]["formula"]
    assert sorted(formula.split(" + ")) == sorted(t["name"] for t in triggers)
    target = str(backlog or concurrency)
    assert spec["advanced"]["scalingModifiers"]["target"] == target
    assert {t["metadata"]["listLength"] for t in triggers} == {target}
    assert all(t["authenticationRef"] == {"name": "auth"} and "password" not in t["metadata"] for t in triggers)


HOST_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True)
SENTINEL_HOSTS = st.lists(
    st.tuples(HOST_NAMES, st.integers(1, 65535)),
    min_size=1,
    max_size=5,
)


@given(
    queues=st.lists(QUEUE_NAMES, min_size=1, max_size=4, unique=True),
    steps=st.sets(st.integers(1, 9), max_size=9).map(lambda s: (0, *sorted(s))),
    concurrency=st.integers(1, 16),
    backlog=st.none() | st.integers(1, 100),
    sentinels=SENTINEL_HOSTS,
    master=st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True),
    database=st.integers(0, 15),
    tls=st.booleans(),
)
def test_with_a_sentinel_target_every_trigger_is_redis_sentinel_on_the_same_lists_and_formula(
    queues: list[str],
    steps: tuple[int, ...],
    concurrency: int,
    backlog: int | None,
    sentinels: list[tuple[str, int]],
    master: str,
    database: int,
    tls: bool,
) -> None:
    pool = PoolSpec(
        name="p",
        queues=tuple(queues),
        concurrency=concurrency,
        autoscaling=AutoscalingSpec(max_replicas=3, priority_steps=steps, backlog_per_replica=backlog),
    )
    addresses = ",".join(f"{host}:{port}" for host, port in sentinels)
    target = SentinelTarget(master_name=master, addresses=addresses)
    common = {"database": database, "tls": tls, "auth_name": "auth"}
    spec = scaled_object_spec("celery-p", pool, sentinel=target, **common)
    triggers = spec["triggers"]
    assert {t["type"] for t in triggers} == {"redis-sentinel"}
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert list(metadata) == [
            "addresses",
            "sentinelMaster",
            "listName",
            "listLength",
            "databaseIndex",
            "enableTLS",
        ]
        assert (metadata["addresses"], metadata["sentinelMaster"]) == (addresses, master)
        assert (metadata["databaseIndex"], metadata["enableTLS"]) == (str(database), "true" if tls else "false")
        assert trigger["authenticationRef"] == {"name": "auth"}
    names = [t["metadata"]["listName"] for t in triggers]
    assert sorted(names) == sorted({name for q in queues for name in kombu_lists(q, steps)})
    assert len(names) == len(set(names))
    assert sorted(spec["advanced"]["scalingModifiers"]["formula"].split(" + ")) == sorted(t["name"] for t in triggers)
    # Only the connection differs from the plain redis ScaledObject: lists, names, targets and formula are shared.
    plain = scaled_object_spec("celery-p", pool, address="redis:6379", **common)
    for trigger in triggers:
        trigger["type"] = "redis"
        metadata = trigger["metadata"]
        del metadata["addresses"], metadata["sentinelMaster"]
        trigger["metadata"] = {"address": "redis:6379", **metadata}
    assert json.dumps(spec) == json.dumps(plain)
    # An address given beside the target is not used: KEDA's redis-sentinel would refuse both.
    assert scaled_object_spec("celery-p", pool, address="redis:6379", sentinel=target, **common) == (
        scaled_object_spec("celery-p", pool, sentinel=target, **common)
    )


def test_the_plain_redis_scaled_object_keeps_its_exact_shape() -> None:
    pool = PoolSpec(
        name="p",
        queues=("a",),
        concurrency=2,
        autoscaling=AutoscalingSpec(max_replicas=3, priority_steps=(0, 5)),
    )
    spec = scaled_object_spec("celery-p", pool, address="redis:6379", database=1, tls=True, auth_name="auth")
    metadata = {"listLength": "2", "databaseIndex": "1", "enableTLS": "true"}
    triggers = [
        {
            "type": "redis",
            "name": f"q0p{step}",
            "metadata": {"address": "redis:6379", "listName": name, **metadata},
            "authenticationRef": {"name": "auth"},
        }
        for step, name in ((0, "a"), (5, "a\x06\x165"))
    ]
    assert json.dumps(spec) == json.dumps(
        {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "celery-p"},
            "minReplicaCount": 0,
            "maxReplicaCount": 3,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
                "scalingModifiers": {
                    "formula": "q0p0 + q0p5",
                    "target": "2",
                    "activationTarget": "0",
                    "metricType": "AverageValue",
                },
            },
            "triggers": triggers,
        }
    )
    with pytest.raises(ValueError, match="address"):
        scaled_object_spec("celery-p", pool, database=1, tls=True, auth_name="auth")


def test_the_trigger_authentication_reads_the_sentinel_password_from_its_secret_key() -> None:
    auth = BrokerAuth(
        password=("broker", "REDIS_PASSWORD"),
        username=("broker", "REDIS_USERNAME"),
        sentinel_password=("sentinel", "SENTINEL_PASSWORD"),
        tls=True,
        ca=KeyRef(name="ca", key="pem"),
    )
    assert trigger_authentication_spec(auth) == {
        "secretTargetRef": [
            {"parameter": "password", "name": "broker", "key": "REDIS_PASSWORD"},
            {"parameter": "username", "name": "broker", "key": "REDIS_USERNAME"},
            {"parameter": "sentinelPassword", "name": "sentinel", "key": "SENTINEL_PASSWORD"},
            {"parameter": "ca", "name": "ca", "key": "pem"},
        ]
    }
    without = BrokerAuth(password=("broker", "REDIS_PASSWORD"))
    assert trigger_authentication_spec(without) == {
        "secretTargetRef": [{"parameter": "password", "name": "broker", "key": "REDIS_PASSWORD"}]
    }


def test_a_scaled_pool_renders_a_scaled_object_a_trigger_authentication_and_no_replicas(mocks: RenderMocks) -> None:
    run(lambda: platform([scaled(min_replicas=0), PoolSpec(name="fixed", queues=("low",), replicas=2)]))
    deployments = {d["metadata"]["name"]: d for d in objects_of(mocks, "Deployment")}
    assert "replicas" not in deployments["celery-main"]["spec"]
    assert deployments["celery-fixed"]["spec"]["replicas"] == 2
    [scaled_object] = objects_of(mocks, "ScaledObject")
    assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled_object["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "celery-main"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 5)
    assert {t["metadata"]["address"] for t in spec["triggers"]} == {"redis.team-a.svc.cluster.local:6379"}
    [auth] = objects_of(mocks, "TriggerAuthentication")
    assert auth["metadata"]["name"] == "celery-broker-auth"
    [secret] = [s for s in objects_of(mocks, "Secret") if s["metadata"]["name"].startswith("keys-")]
    assert auth["spec"] == {
        "secretTargetRef": [{"parameter": "password", "name": secret["metadata"]["name"], "key": "REDIS_PASSWORD"}]
    }
    # The PDB stays valid at zero pods: maxUnavailable, never minAvailable.
    pdbs = {p["metadata"]["name"]: p["spec"] for p in objects_of(mocks, "PodDisruptionBudget")}
    assert pdbs["celery-main-pdb"]["maxUnavailable"] == 1 and "minAvailable" not in pdbs["celery-main-pdb"]


def test_no_pool_scaled_means_no_keda_object_and_redis_admits_only_the_platform(mocks: RenderMocks) -> None:
    run(lambda: platform([PoolSpec(name="main", queues=("default",))]))
    assert objects_of(mocks, "ScaledObject") == [] and objects_of(mocks, "TriggerAuthentication") == []


def test_over_tls_with_a_ca_secret_keda_gets_tls_and_the_ca_from_the_secret(mocks: RenderMocks) -> None:
    spec = {
        "tls": True,
        "url_secret": KeyRef(name="managed-redis", key="url"),
        "ca_secret": KeyRef(name="ca", key="pem"),
    }
    spec |= {"password_secret": KeyRef(name="managed-redis", key="password"), "database": 2, "port": 6380}
    run(lambda: platform([scaled()], broker="external", spec=spec))
    [scaled_object] = objects_of(mocks, "ScaledObject")
    metadata = {
        (t["metadata"]["address"], t["metadata"]["enableTLS"], t["metadata"]["databaseIndex"])
        for t in scaled_object["spec"]["triggers"]
    }
    assert metadata == {("10.0.0.5:6380", "true", "2")}
    [auth] = objects_of(mocks, "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "managed-redis", "key": "password"},
        {"parameter": "ca", "name": "ca", "key": "pem"},
    ]


def test_an_external_broker_url_value_keeps_its_password_for_keda_as_a_secret_key(mocks: RenderMocks) -> None:
    url = "rediss://app:s3cret@10.0.0.5:6380/4"
    made = run(lambda: platform([scaled()], broker="external", url=url))
    assert url_secret_data(url) == {"CELERY_BROKER_URL": url, "REDIS_PASSWORD": "s3cret", "REDIS_USERNAME": "app"}
    assert url_secret_data("redis://:p%40ss@h:6379/0")["REDIS_PASSWORD"] == "p@ss"
    [scaled_object] = objects_of(mocks, "ScaledObject")
    assert {t["metadata"]["databaseIndex"] for t in scaled_object["spec"]["triggers"]} == {"4"}
    assert made["broker"].database == 4
    [auth] = objects_of(mocks, "TriggerAuthentication")
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == ["password", "username"]
    assert "s3cr" not in yaml.safe_dump(auth) + yaml.safe_dump(scaled_object)


def test_fails_when_the_url_is_in_an_existing_secret_and_no_password_secret_is_named(mocks: RenderMocks) -> None:
    spec = {"url_secret": KeyRef(name="managed-redis", key="url"), "cidr": "10.0.0.0/24"}
    with pytest.raises(ValidationError) as err:
        run(lambda: platform([scaled()], broker="external", spec=spec))
    assert "broker.passwordSecret: is required when a pool autoscales (main)" in str(err.value)
    assert objects_of(mocks, "Deployment") == [] and objects_of(mocks, "ScaledObject") == []


@pytest.mark.parametrize(
    ("scaling", "replicas", "field"),
    [
        ({"max_replicas": 2, "min_replicas": 3}, 1, "pools[0].autoscaling.maxReplicas: is below minReplicas"),
        ({"max_replicas": 0}, 1, "pools[0].autoscaling.maxReplicas: too small"),
        ({"max_replicas": 2, "min_replicas": -1}, 1, "pools[0].autoscaling.minReplicas: too small"),
        ({"max_replicas": 2, "backlog_per_replica": 0}, 1, "pools[0].autoscaling.backlogPerReplica: too small"),
        ({"max_replicas": 2, "priority_steps": (3, 6)}, 1, "pools[0].autoscaling.prioritySteps: not ascending from 0"),
        ({"max_replicas": 2, "priority_steps": (0, 6, 3)}, 1, "pools[0].autoscaling.prioritySteps: not ascending"),
        (
            {"max_replicas": 2, "priority_steps": (0, 12)},
            1,
            "pools[0].autoscaling.prioritySteps: too many or too large",
        ),
        (
            {"max_replicas": 2, "polling_interval_seconds": 0},
            1,
            "pools[0].autoscaling.pollingIntervalSeconds: too small",
        ),
        ({"max_replicas": 2}, 3, "pools[0].replicas: is set on an autoscaled pool, whose replicas KEDA owns"),
    ],
)
def test_fails_on_bad_autoscaling_and_names_the_field(scaling: dict[str, Any], replicas: int, field: str) -> None:
    pool = PoolSpec(name="main", queues=("default",), replicas=replicas, autoscaling=AutoscalingSpec(**scaling))
    assert any(str(p).startswith(field) for p in pool.validate("pools[0]")), pool.validate("pools[0]")


QUOTA = QuotaSpec(requests_cpu="2", requests_memory="8Gi", limits_cpu="4", limits_memory="16Gi", pods=20)


@given(max_replicas=st.integers(1, 40))
def test_the_quota_counts_an_autoscaled_pool_at_max_replicas_plus_surge(max_replicas: int) -> None:
    # Each worker pod requests 100m: the quota's 2 CPUs hold 20 pods, which is also the pods line.
    pool = PoolSpec(name="main", queues=("default",), autoscaling=AutoscalingSpec(max_replicas=max_replicas))
    plans = celery_plans(SETTINGS, [pool], BeatSpec(enabled=False))
    problems = check_quota(plans, QUOTA, NamespaceArgs(name="team-a").limit_range)
    assert bool(problems) == (max_replicas + 1 > 20)
    if problems:
        text = "\n".join(map(str, problems))
        assert f"pools[main] (autoscaling.maxReplicas {max_replicas} + surge 1) {max_replicas + 1}" in text


def test_a_stack_with_an_autoscaled_pool_renders_through_the_cli(tmp_path: Path) -> None:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    pools = document["config"]["celery-platform:pools"]
    del pools[0]["replicas"]
    pools[0]["autoscaling"] = {"maxReplicas": 4, "prioritySteps": [0, 5]}
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    docs = render_documents("dev", tmp_path)
    [scaled_object] = [d for d in docs if d["kind"] == "ScaledObject"]
    lists = [t["metadata"]["listName"] for t in scaled_object["spec"]["triggers"]]
    assert lists == [name for q in pools[0]["queues"] for name in (q, f"{q}\x06\x165")]
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "redis-ingress"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}},
    } in policy["spec"]["ingress"][0]["from"]


def test_a_warning_when_every_pool_may_scale_to_zero_and_none_otherwise() -> None:
    at_zero = [scaled("a", ("default",)), scaled("b", ("low",))]
    warning = all_at_zero_warning(at_zero)
    assert warning is not None and "minReplicas: 1" in warning and "visibility timeout" in warning
    assert all_at_zero_warning([scaled("a", ("default",)), scaled("b", ("low",), min_replicas=1)]) is None
    assert all_at_zero_warning([scaled("a", ("default",)), PoolSpec(name="b", queues=("low",))]) is None


def test_fails_when_the_scaled_object_name_is_longer_than_keda_allows() -> None:
    pool = PoolSpec(name="p" * 40, queues=("default",), autoscaling=AutoscalingSpec(max_replicas=2))
    [problem] = name_problems("celery-platform-prod", [pool])
    assert str(problem).startswith("pools[0].name: makes the ScaledObject name celery-platform-prod-'pppp")
    assert "longer than 54 characters" in str(problem) and "at most 33 characters" in str(problem)
    assert name_problems("celery", [pool]) == []  # 47 characters
    assert name_problems("celery-platform-prod", [PoolSpec(name="p" * 40, queues=("q",))]) == []  # no HPA


@pytest.mark.parametrize("monitoring", [{}, {"enabled": False}])
def test_the_stack_warns_of_all_pools_at_zero_only_when_no_exporter_sweeps(
    tmp_path: Path, monitoring: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:

    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    for pool in document["config"]["celery-platform:pools"]:
        del pool["replicas"]
        pool["autoscaling"] = {"maxReplicas": 2}
    document["config"]["celery-platform:monitoring"] = monitoring
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    render_documents("dev", tmp_path)  # under the mocks, pulumi.log.warn goes to Python's logging
    warned = "every pool autoscales with minReplicas 0" in caplog.text
    assert warned == (monitoring == {"enabled": False}), caplog.text


def _external_broker_stack(tmp_path: Path, extra: dict[str, Any], external: bool = True) -> Path:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    if external:
        document["config"]["celery-platform:broker"] = {
            "type": "external",
            "external": {
                "host": "cache.example.com",
                "cidr": "10.30.0.0/16",
                "urlSecret": {"name": "redis", "key": "url"},
            },
        }
    document["config"].update(extra)
    root = tmp_path / str(len(list(tmp_path.iterdir())))
    root.mkdir()
    (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (root / "infra").symlink_to(ROOT / "infra")
    (root / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    return root


@pytest.mark.parametrize(
    ("extra", "warned"),
    [
        ({"celery-platform:rotation": {"redisPassword": 1}}, True),
        ({"celery-platform:rotation": {"djangoSecretKey": 1}}, False),
        ({}, False),
    ],
)
def test_the_stack_warns_when_an_external_broker_stack_rotates_the_redis_password_it_never_uses(
    tmp_path: Path, extra: dict[str, Any], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    render_documents("dev", _external_broker_stack(tmp_path, extra))
    assert ("rotation.redisPassword is ignored: broker.type is external" in caplog.text) == warned, caplog.text


def test_rotating_the_redis_password_of_an_external_broker_stack_changes_no_object(tmp_path: Path) -> None:
    bump = {"celery-platform:rotation": {"redisPassword": 1}}
    given = {"celery-platform:redisPassword": {"secure": "v1:c3RhbmQtaW4="}}
    before = render_documents("dev", _external_broker_stack(tmp_path, {}))
    assert render_documents("dev", _external_broker_stack(tmp_path, bump)) == before, "nothing replaced or rolled"
    assert render_documents("dev", _external_broker_stack(tmp_path, given)) == before, "nothing replaced or rolled"
    [secret] = [d for d in before if d["kind"] == "Secret" and "REDIS_PASSWORD" in json.dumps(d)] or [None]
    assert secret is None, "the platform Secret holds no Redis password with an external broker"
    # ... while with our Redis the same bump is a rotation, which the Secret and every pod show.
    ours = render_documents("dev", _external_broker_stack(tmp_path, {}, external=False))
    assert render_documents("dev", _external_broker_stack(tmp_path, bump, external=False)) != ours
