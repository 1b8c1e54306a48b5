"""``broker.type: sentinel`` under Pulumi mocks: the real program on prod's stack file, and SentinelBroker alone.

What the program decides is asserted (the mocks echo inputs): which objects exist and how they are wired,
where each secret comes from, and that a standalone stack is untouched by the Sentinel code.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi
import pytest

from celery_platform.builders.secret_keys import REDIS_PASSWORD, SENTINEL_PASSWORD
from celery_platform.config.autoscaling import KedaOperator
from celery_platform.config.problems import ValidationError
from celery_platform.config.sentinel import SentinelSpec
from celery_platform.config.specs import RedisSpec
from celery_platform.render import ProgramRun, run_program, to_yaml
from celery_platform.render.mocks import PLACEHOLDER, SECRET_SIG, RenderMocks
from celery_platform.render.stack_files import stack_config
from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
from celery_platform.resources.sentinel import SentinelBroker, SentinelBrokerArgs
from tests.conftest import is_secret, objects_of, resolve, run

P = "celery-platform:"
NS = "celery-prod"
PART_OF = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "celery-platform"}}}
NODES = [f"redis-node-{i}.redis-node-headless.{NS}.svc.cluster.local:6379" for i in range(3)]
SENTINELS = [f"redis-sentinel-{i}.redis-sentinel-headless.{NS}.svc.cluster.local:26379" for i in range(3)]
SENTINEL_OBJECTS = {
    ("StatefulSet", "redis-node"),
    ("StatefulSet", "redis-sentinel"),
    ("Service", "redis-node-headless"),
    ("Service", "redis-sentinel-headless"),
    ("Service", "redis-sentinel"),
    ("PodDisruptionBudget", "redis-node-pdb"),
    ("PodDisruptionBudget", "redis-sentinel-pdb"),
    ("NetworkPolicy", "redis-node-ingress"),
    ("NetworkPolicy", "redis-sentinel-ingress"),
}
STANDALONE_OBJECTS = {
    ("StatefulSet", "redis"),
    ("Service", "redis"),
    ("Service", "redis-headless"),
    ("NetworkPolicy", "redis-ingress"),
}


def prod_config(**changes: Any) -> tuple[dict[str, str], list[str]]:
    """prod's stack config as the engine passes it, with ``changes`` (Python values) as JSON keys."""
    config, secret_keys = stack_config("prod")
    return {**config, **{P + key: json.dumps(value) for key, value in changes.items()}}, secret_keys


def sentinel_changes(**extra: Any) -> dict[str, Any]:
    quota = {**json.loads(stack_config("prod")[0][P + "quota"]), "persistentVolumeClaims": 4}
    return {"broker": {"type": "sentinel"}, "quota": quota, **extra}


def program(**changes: Any) -> ProgramRun:
    config, secret_keys = prod_config(**changes)
    return run_program("prod", config, secret_keys)


@functools.cache
def sentinel_run() -> ProgramRun:
    return program(**sentinel_changes())


def kinds_and_names(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def unwrapped(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) and value.get(SECRET_SIG) else value


def celery_workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    part = {"worker", "beat", "monitoring"}
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["labels"]["app.kubernetes.io/component"] in part
    }


# --------------------------------------------------------------------------- objects


def test_a_sentinel_stack_swaps_the_one_redis_for_exactly_the_sentinel_objects() -> None:
    sentinel = kinds_and_names(sentinel_run().mocks.objects)
    standalone = kinds_and_names(program().mocks.objects)
    # The URL Secret is auto-named after its component, so it is the one other object that changes name.
    [(_, new_url)] = [o for o in sentinel - standalone if o[0] == "Secret"]
    [(_, old_url)] = [o for o in standalone - sentinel if o[0] == "Secret"]
    assert new_url.startswith("celery-sentinel-url-") and old_url.startswith("celery-redis-url-")
    assert sentinel - standalone == {*SENTINEL_OBJECTS, ("Secret", new_url)}
    assert standalone - sentinel == {*STANDALONE_OBJECTS, ("Secret", old_url)}


def test_both_statefulsets_start_every_pod_in_parallel_and_only_the_data_nodes_claim_volumes() -> None:
    objects = sentinel_run().mocks.objects
    nodes, sentinels = named(objects, "StatefulSet", "redis-node"), named(objects, "StatefulSet", "redis-sentinel")
    for sts, replicas, service in ((nodes, 3, "redis-node-headless"), (sentinels, 3, "redis-sentinel-headless")):
        spec = sts["spec"]
        assert (spec["replicas"], spec["podManagementPolicy"], spec["serviceName"]) == (replicas, "Parallel", service)
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    [claim] = nodes["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
    assert "volumeClaimTemplates" not in sentinels["spec"]
    # The two sets must never select each other's pods: a PDB or Service over both would be wrong.
    node_sel, sentinel_sel = nodes["spec"]["selector"]["matchLabels"], sentinels["spec"]["selector"]["matchLabels"]
    assert not node_sel.items() <= sentinels["spec"]["template"]["metadata"]["labels"].items()
    assert not sentinel_sel.items() <= nodes["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("replicas", [1, 4])
def test_the_data_nodes_are_one_primary_plus_the_replicas_setting(replicas: int) -> None:
    run_ = program(
        **sentinel_changes(
            broker={"type": "sentinel", "sentinel": {"replicas": replicas, "sentinels": 5, "minReplicasToWrite": 0}},
            quota={
                **json.loads(stack_config("prod")[0][P + "quota"]),
                "persistentVolumeClaims": 5,
                "requestsStorage": "25Gi",
            },
        )
    )
    objects = run_.mocks.objects
    assert named(objects, "StatefulSet", "redis-node")["spec"]["replicas"] == replicas + 1
    assert named(objects, "StatefulSet", "redis-sentinel")["spec"]["replicas"] == 5


def test_every_pod_has_a_stable_name_through_headless_services_that_publish_not_ready_addresses() -> None:
    objects = sentinel_run().mocks.objects
    for name, sts, port in (
        ("redis-node-headless", "redis-node", 6379),
        ("redis-sentinel-headless", "redis-sentinel", 26379),
    ):
        spec = named(objects, "Service", name)["spec"]
        assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True
        assert spec["selector"] == named(objects, "StatefulSet", sts)["spec"]["selector"]["matchLabels"]
        assert [p["port"] for p in spec["ports"]] == [port]
    front = named(objects, "Service", "redis-sentinel")["spec"]
    assert front["type"] == "ClusterIP" and "clusterIP" not in front and "publishNotReadyAddresses" not in front
    assert front["selector"] == named(objects, "StatefulSet", "redis-sentinel")["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in front["ports"]] == [26379]


def test_each_set_has_a_pdb_of_one_unavailable_pod_over_exactly_its_pods() -> None:
    objects = sentinel_run().mocks.objects
    for sts in ("redis-node", "redis-sentinel"):
        pdb = named(objects, "PodDisruptionBudget", f"{sts}-pdb")["spec"]
        assert pdb == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": named(objects, "StatefulSet", sts)["spec"]["selector"]["matchLabels"]},
        }


def test_each_set_admits_only_the_platforms_pods_on_its_own_port_without_autoscaling() -> None:
    objects = sentinel_run().mocks.objects
    for sts, port in (("redis-node", 6379), ("redis-sentinel", 26379)):
        policy = named(objects, "NetworkPolicy", f"{sts}-ingress")["spec"]
        assert policy["podSelector"] == named(objects, "StatefulSet", sts)["spec"]["selector"]
        assert policy["policyTypes"] == ["Ingress"]
        assert policy["ingress"] == [{"from": [PART_OF], "ports": [{"protocol": "TCP", "port": port}]}]
    # The peers it admits: every Celery pod, and the nodes and Sentinels themselves (replication, monitoring).
    selector = PART_OF["podSelector"]["matchLabels"].items()
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        assert selector <= workload["spec"]["template"]["metadata"]["labels"].items(), workload["metadata"]["name"]


# --------------------------------------------------------------------------- secrets and outputs


def test_the_sentinel_password_is_generated_url_safe_kept_in_the_secret_and_secret_everywhere() -> None:
    run_ = sentinel_run()
    [generator] = [i for t, n, i in run_.mocks.resources if t.endswith("RandomPassword") and "sentinel" in n]
    assert generator["special"] is False and generator["length"] >= 16
    assert generator["keepers"] == {"rotation": "0"}
    secrets = run_.globals["platform"].secrets
    assert secrets.sentinel_password is not None and is_secret(secrets.sentinel_password)
    [secret] = [o for o in objects_of(run_.mocks, "Secret") if o["metadata"]["name"].startswith("celery-secrets-")]
    assert secret["stringData"][SECRET_SIG], "the whole stringData is a secret input"
    data = unwrapped(secret["stringData"])
    assert data[SENTINEL_PASSWORD] == resolve(secrets.sentinel_password) != data[REDIS_PASSWORD]
    assert secret["metadata"]["annotations"]["celery-platform/rotation.sentinelPassword"] == "0"


def test_the_broker_url_output_is_secret_and_names_every_sentinel_with_the_redis_password() -> None:
    platform = sentinel_run().globals["platform"]
    assert is_secret(platform.broker_url)
    password = resolve(platform.secrets.redis_password)
    assert resolve(platform.broker_url) == ";".join(f"sentinel://:{password}@{s}/0" for s in SENTINELS)
    assert resolve(platform.broker_host) == f"redis-sentinel.{NS}.svc.cluster.local"
    assert resolve(platform.broker_port) == 26379
    [url_secret] = [o for o in sentinel_run().mocks.objects if o["metadata"]["name"].startswith("celery-sentinel-url-")]
    assert url_secret["stringData"][SECRET_SIG]
    assert unwrapped(url_secret["stringData"]) == {"CELERY_BROKER_URL": resolve(platform.broker_url)}


def test_the_program_exports_the_sentinel_url_as_a_secret() -> None:
    outputs: dict[str, Any] = {}
    original = pulumi.export

    def recording(name: str, value: Any) -> None:
        outputs[name] = value
        original(name, value)

    pulumi.export = recording  # type: ignore[assignment]
    try:
        program(**sentinel_changes())
    finally:
        pulumi.export = original  # type: ignore[assignment]
    assert is_secret(outputs["brokerUrl"])
    assert (resolve(outputs["brokerUrl"]) or "").startswith("sentinel://")


def test_bumping_rotation_sentinel_password_changes_that_keeper_and_nothing_else() -> None:
    before = {(t, n): i for t, n, i in sentinel_run().mocks.resources}
    rotation = {"djangoSecretKey": 0, "redisPassword": 0, "sentinelPassword": 1, "fieldEncryptionKey": 0}
    after = {(t, n): i for t, n, i in program(**sentinel_changes(rotation=rotation)).mocks.resources}
    assert set(before) == set(after)
    changed = {key for key in before if before[key] != after[key]}
    [generator] = [k for k in changed if k[0].endswith("RandomPassword")]
    assert "sentinel" in generator[1] and after[generator]["keepers"] == {"rotation": "1"}
    [secret] = [k for k in changed if k != generator]
    assert secret[0] == "kubernetes:core/v1:Secret"
    annotations = (before[secret]["metadata"]["annotations"], after[secret]["metadata"]["annotations"])
    assert {k for k in annotations[0] if annotations[0][k] != annotations[1][k]} == {
        "celery-platform/rotation.sentinelPassword"
    }


# --------------------------------------------------------------------------- the clients


def test_every_celery_pod_finds_the_master_through_the_sentinels_by_secret_reference() -> None:
    objects = sentinel_run().mocks.objects
    secret_name = next(o for o in objects if o["metadata"]["name"].startswith("celery-secrets-"))["metadata"]["name"]
    url_name = next(o for o in objects if o["metadata"]["name"].startswith("celery-sentinel-url-"))["metadata"]["name"]
    pods = celery_workloads(objects)
    assert set(pods) == {"celery-main", "celery-beat", "celery-exporter"}
    for name, pod in pods.items():
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            env = {e["name"]: e for e in container["env"]}
            where = (name, container["name"])
            assert env["CELERY_BROKER_SENTINEL_MASTER"] == {"name": "CELERY_BROKER_SENTINEL_MASTER", "value": "celery"}
            assert env["CELERY_BROKER_SENTINEL_PASSWORD"]["valueFrom"] == {
                "secretKeyRef": {"name": secret_name, "key": SENTINEL_PASSWORD}
            }, where
            assert env["CELERY_BROKER_URL"]["valueFrom"] == {
                "secretKeyRef": {"name": url_name, "key": "CELERY_BROKER_URL"}
            }, where
            assert not any("redis." + NS in str(e.get("value", "")) for e in env.values()), where


def test_wait_for_broker_asks_every_sentinel_for_a_master_instead_of_pinging_one_redis() -> None:
    pods = celery_workloads(sentinel_run().mocks.objects)
    for name in ("celery-main", "celery-beat"):
        [init] = pods[name]["initContainers"]
        env = {e["name"]: e for e in init["env"]}
        assert init["name"] == "wait-for-broker"
        assert env["BROKER_SENTINELS"]["value"] == " ".join(SENTINELS)
        script = init["command"][-1]
        assert "get-master-addr-by-name" in script and "grep -qx master" in script and "PONG" not in script


def test_the_data_nodes_and_sentinels_read_both_passwords_by_reference_and_know_each_other() -> None:
    objects = sentinel_run().mocks.objects
    for sts in ("redis-node", "redis-sentinel"):
        [container] = named(objects, "StatefulSet", sts)["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env[REDIS_PASSWORD]["valueFrom"]["secretKeyRef"]["key"] == REDIS_PASSWORD
        assert env[SENTINEL_PASSWORD]["valueFrom"]["secretKeyRef"]["key"] == SENTINEL_PASSWORD
        assert env["REDIS_NODES"]["value"] == " ".join(NODES) and env["SENTINELS"]["value"] == " ".join(SENTINELS)
        assert env["SENTINEL_MASTER"]["value"] == "celery"
    [node] = named(objects, "StatefulSet", "redis-node")["spec"]["template"]["spec"]["containers"]
    args = node["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--min-replicas-to-write") + 1] == "1"


def test_no_secret_value_reaches_any_rendered_value_of_a_sentinel_stack() -> None:
    run_ = sentinel_run()
    text = to_yaml(run_.mocks.ordered())
    platform = run_.globals["platform"]
    secrets = [resolve(platform.secrets.sentinel_password), resolve(platform.secrets.redis_password)]
    assert len(run_.mocks.generated) >= 4
    for value in [*run_.mocks.generated, *secrets, resolve(platform.broker_url)]:
        assert value and value not in text
    assert "sentinel://" not in to_yaml([o for o in run_.mocks.ordered() if o["kind"] != "ConfigMap"])
    for doc in run_.mocks.ordered():
        if doc["kind"] == "Secret":
            assert set(doc["stringData"].values()) == {PLACEHOLDER}, doc["metadata"]["name"]


# --------------------------------------------------------------------------- standalone is untouched


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_standalone_stack_has_no_sentinel_key_object_or_env(stack: str) -> None:
    config, secret_keys = stack_config(stack)
    run_ = run_program(stack, config, secret_keys)
    assert not [n for t, n, _ in run_.mocks.resources if "sentinel" in n.lower()]
    # The shipped modules (ConfigMaps) support a Sentinel URL whatever the broker: their source says so.
    text = to_yaml([o for o in run_.mocks.ordered() if o["kind"] != "ConfigMap"])
    assert "sentinel" not in text.lower()
    [secret] = [o for o in run_.mocks.ordered() if o["metadata"]["name"].startswith("celery-secrets-")]
    assert set(secret["stringData"]) == {"DATABASE_URL", "FIELD_ENCRYPTION_KEY", REDIS_PASSWORD, "SECRET_KEY"}
    assert run_.globals["platform"].secrets.sentinel_password is None


def test_a_standalone_stack_renders_the_same_bytes_with_type_redis_spelled_out_or_a_sentinel_keeper_set() -> None:
    plain = to_yaml(program().mocks.ordered())
    assert to_yaml(program(broker={"type": "redis"}).mocks.ordered()) == plain
    rotation = {"djangoSecretKey": 0, "redisPassword": 0, "sentinelPassword": 7, "fieldEncryptionKey": 0}
    assert to_yaml(program(rotation=rotation).mocks.ordered()) == plain


# --------------------------------------------------------------------------- SentinelBroker alone


def broker(keda: KedaOperator | None = None, **args: Any) -> SentinelBroker:
    secrets = PlatformSecrets(
        "keys",
        SecretsArgs(namespace="team-a", database_url="postgresql://u:p@db/app", holds_sentinel_password=True),
    )
    return SentinelBroker("queue", SentinelBrokerArgs(namespace="team-a", secrets=secrets, keda_operator=keda, **args))


def test_the_component_admits_kedas_operator_only_when_given_one(mocks: RenderMocks) -> None:
    run(lambda: broker(KedaOperator()))
    keda = KedaOperator().ingress_peer()
    policies = objects_of(mocks, "NetworkPolicy")
    assert len(policies) == 2
    for policy in policies:
        [rule] = policy["spec"]["ingress"]
        assert rule["from"] == [PART_OF, keda]


def test_the_component_names_its_objects_after_object_name_and_its_sentinels_in_the_url(mocks: RenderMocks) -> None:
    component = run(lambda: broker(object_name="queue", spec=SentinelSpec(sentinels=5, quorum=3)))
    names = {o["metadata"].get("name") for o in mocks.objects if o["kind"] in ("StatefulSet", "Service")}
    assert names == {"queue-node", "queue-sentinel", "queue-node-headless", "queue-sentinel-headless"}
    url = resolve(component.url) or ""
    assert url.count("sentinel://") == 5 and "queue-sentinel-4.queue-sentinel-headless.team-a.svc.cluster.local" in url
    assert component.sentinel.master_name == "celery" and component.sentinel.password is not None
    assert resolve(component.sentinel.addresses)[0].startswith("queue-sentinel-0.")  # type: ignore[index]


def test_fails_when_the_component_gets_an_ephemeral_redis_or_no_sentinel_password(mocks: RenderMocks) -> None:
    with pytest.raises(ValidationError) as caught:
        run(lambda: broker(redis=RedisSpec(persistent=False)))
    assert [p.field for p in caught.value.problems] == ["redis.persistent"]
    with pytest.raises(ValidationError) as caught:
        run(
            lambda: SentinelBroker(
                "queue",
                SentinelBrokerArgs(
                    namespace="team-a",
                    secrets=PlatformSecrets("k", SecretsArgs(namespace="team-a", database_url="postgresql://u:p@db/a")),
                ),
            )
        )
    assert [p.field for p in caught.value.problems] == ["secrets"]
    assert objects_of(mocks, "StatefulSet") == []


def test_the_exporters_admission_plan_is_the_pod_it_runs_with_sentinel() -> None:
    from celery_platform.builders.exporter import exporter_plan
    from celery_platform.config.broker import SentinelClient
    from celery_platform.config.monitoring import MonitoringSpec

    client = SentinelClient(master_name="orders", addresses=("s-0:26379",), password=("keys", SENTINEL_PASSWORD))
    plan = exporter_plan(image="app:1", spec=MonitoringSpec(), queues=["default"], run_as_user=10001, sentinel=client)
    [container] = plan.pod_spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CELERY_BROKER_SENTINEL_MASTER"]["value"] == "orders"
    assert env["CELERY_BROKER_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == SENTINEL_PASSWORD
