"""The workloads under mocks, per component and per real stack: what the report got wrong cannot recur."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from celery_platform.config.problems import ValidationError
from celery_platform.config.specs import PoolSpec, RedisSpec
from celery_platform.config.workload import WorkloadSettings
from celery_platform.render import run_program
from celery_platform.render.mocks import RenderMocks
from celery_platform.render.stack_files import available_stacks, stack_config
from celery_platform.resources.namespace import NamespaceArgs, PlatformNamespace
from celery_platform.resources.redis import RedisBroker, RedisBrokerArgs
from celery_platform.resources.secrets import PlatformSecrets, SecretsArgs
from celery_platform.resources.workers import CeleryWorkers, CeleryWorkersArgs
from tests.conftest import is_secret, objects_of, resolve, run

SECRET_NAMES = ("KEY", "SECRET", "PASSWORD", "DSN", "_URL", "AUTH")


def pods_of(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    ]


def containers_of(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def platform(broker_name: str = "redis", pools: list[PoolSpec] | None = None) -> dict[str, Any]:
    namespace = PlatformNamespace("plat", NamespaceArgs(name="team-a"))
    secrets = PlatformSecrets("keys", SecretsArgs(namespace=namespace.name, database_url="postgresql://u:p@db/app"))
    broker = RedisBroker(
        broker_name,
        RedisBrokerArgs(namespace=namespace.name, secrets=secrets, spec=RedisSpec(), limit_range=namespace.limit_range),
    )
    workers = CeleryWorkers(
        "celery",
        CeleryWorkersArgs(
            namespace=namespace.name,
            secrets=secrets,
            broker=broker,
            settings=WorkloadSettings(image="registry.example.com/app:1.2.3", app="proj"),
            pools=pools or [PoolSpec(name="main", queues=["default", "high"], replicas=2, concurrency=3)],
            limit_range=namespace.limit_range,
        ),
    )
    return {"broker": broker, "workers": workers}


def test_the_broker_host_follows_the_redis_component_name(mocks: RenderMocks) -> None:
    first = run(lambda: platform("redis"))
    assert resolve(first["broker"].host) == "redis.team-a.svc.cluster.local"
    renamed = run(lambda: platform("queue-broker"))
    assert resolve(renamed["broker"].host) == "queue-broker.team-a.svc.cluster.local"
    url = resolve(renamed["broker"].url)
    assert url is not None and "@queue-broker.team-a.svc.cluster.local:6379/0" in url
    assert is_secret(renamed["broker"].url)


def test_redis_refuses_eviction_and_takes_its_password_from_the_secret(mocks: RenderMocks) -> None:
    run(platform)
    [redis] = [o for o in objects_of(mocks, "StatefulSet") if o["metadata"]["name"] == "redis"]
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert {e["name"] for e in container["env"]} == {"REDIS_PASSWORD", "REDISCLI_AUTH"}
    assert all("secretKeyRef" in e["valueFrom"] for e in container["env"])
    assert redis["spec"]["replicas"] == 1
    assert container["readinessProbe"]["exec"]["command"][-1].startswith("redis-cli")


def test_redis_admits_only_this_platforms_pods_on_its_port(mocks: RenderMocks) -> None:
    run(platform)
    [policy] = [p for p in objects_of(mocks, "NetworkPolicy") if p["metadata"]["name"] == "redis-ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "celery-platform"}}}]


def test_a_worker_runs_celery_as_pid_1_with_every_flag_the_report_lacked(mocks: RenderMocks) -> None:
    run(platform)
    [deployment] = objects_of(mocks, "Deployment")
    spec = deployment["spec"]
    [worker] = spec["template"]["spec"]["containers"]
    assert worker["command"] == ["celery"]
    args = worker["args"]
    assert args[:3] == ["-A", "proj", "worker"]
    assert args[args.index("-Q") + 1] == "default,high"
    assert args[args.index("-n") + 1] == "main@%h"
    assert args[args.index("--concurrency") + 1] == "3"
    assert int(args[args.index("--max-memory-per-child") + 1]) > 0
    assert args[args.index("--include") + 1] == "celery_platform_hooks"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 300
    assert pod["automountServiceAccountToken"] is False
    assert pod["topologySpreadConstraints"]
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in worker["volumeMounts"]} >= {"/tmp"}
    [pdb] = objects_of(mocks, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == spec["selector"]


def test_a_worker_waits_for_the_broker_in_an_init_container_with_resources(mocks: RenderMocks) -> None:
    run(platform)
    [deployment] = objects_of(mocks, "Deployment")
    [init] = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == "wait-for-broker"
    assert set(init["resources"]) == {"requests", "limits"}
    assert "redis-cli" in init["command"][-1] and "PONG" in init["command"][-1]


def test_probes_read_files_and_never_start_python(mocks: RenderMocks) -> None:
    run(platform)
    [deployment] = objects_of(mocks, "Deployment")
    [worker] = deployment["spec"]["template"]["spec"]["containers"]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = worker[kind]
        assert probe["timeoutSeconds"] >= 5
        argv = probe["exec"]["command"]
        assert argv[0] in ("test", "sh"), "no interpreter and no celery command in a probe"
        text = " ".join(argv)
        assert "python" not in text and "inspect" not in text and "/proc" not in text
    assert "heartbeat" in " ".join(worker["livenessProbe"]["exec"]["command"])


def test_the_hooks_module_ships_in_a_config_map_mounted_where_pythonpath_points(mocks: RenderMocks) -> None:
    run(platform)
    [config_map] = objects_of(mocks, "ConfigMap")
    source = config_map["data"]["celery_platform_hooks.py"]
    assert "HeartbeatStep" in source
    [deployment] = objects_of(mocks, "Deployment")
    [worker] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    mount = next(m for m in worker["volumeMounts"] if m["name"] == "hooks")
    assert env["PYTHONPATH"].split(":")[0] == mount["mountPath"]


def test_fails_when_a_pool_has_no_concurrency_or_queues_before_anything_is_registered(mocks: RenderMocks) -> None:
    with pytest.raises(ValidationError) as caught:
        run(lambda: platform(pools=[PoolSpec(name="main", queues=[], concurrency=0)]))
    assert {p.field for p in caught.value.problems} == {"pools[0].queues", "pools[0].concurrency"}
    assert objects_of(mocks, "Deployment") == []


@pytest.mark.parametrize("stack", available_stacks())
class TestEachStack:
    """Every real stack file, loaded through PULUMI_CONFIG."""

    @pytest.fixture
    def objects(self, stack: str) -> list[dict[str, Any]]:
        config, secret_keys = stack_config(stack)
        program = run_program(stack, config, secret_keys)
        self.program = program
        return program.mocks.objects

    def test_every_container_has_requests_and_limits(self, objects: list[dict[str, Any]]) -> None:
        for name, pod in pods_of(objects):
            for container in containers_of(pod):
                for side in ("requests", "limits"):
                    assert set(container["resources"][side]) == {"cpu", "memory"}, (name, container["name"])

    def test_no_probe_uses_proc_cmdline_or_celery_inspect(self, objects: list[dict[str, Any]]) -> None:
        for _, pod in pods_of(objects):
            for container in containers_of(pod):
                for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if kind in container:
                        probe = container[kind]
                        # The exporter's probes are HTTP GETs of its own /livez and /readyz.
                        text = " ".join(probe["exec"]["command"]) if "exec" in probe else probe["httpGet"]["path"]
                        assert "/proc" not in text and "inspect" not in text

    def test_every_worker_sets_concurrency(self, objects: list[dict[str, Any]]) -> None:
        workers = [
            o
            for o in objects
            if o["kind"] == "Deployment" and o["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
        ]
        assert workers
        for deployment in workers:
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            assert int(args[args.index("--concurrency") + 1]) >= 1

    def test_beat_runs_at_most_once(self, objects: list[dict[str, Any]]) -> None:
        beats = [
            o
            for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")
            and "beat" in o["spec"]["template"]["spec"]["containers"][0].get("args", [])
        ]
        assert len(beats) == 1
        assert beats[0]["kind"] == "StatefulSet" and beats[0]["spec"]["replicas"] == 1

    def test_secrets_arrive_only_through_secret_key_refs(self, objects: list[dict[str, Any]]) -> None:
        for _, pod in pods_of(objects):
            for container in containers_of(pod):
                for env in container.get("env", []):
                    if any(marker in env["name"] for marker in SECRET_NAMES):
                        assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]

    def test_the_broker_url_output_is_secret(self, objects: list[dict[str, Any]]) -> None:
        broker = self.program.globals["platform"].broker
        assert is_secret(broker.url)
        assert isinstance(broker.url, pulumi.Output)
