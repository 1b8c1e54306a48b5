"""KEDA's ``redis-sentinel`` scaler on a real Sentinel deployment: what it reads, and when, after a SIGKILL.

The oracle is keda-backlog (tools/keda/main.go): KEDA's own ``scalers.NewRedisScaler(ctx, false, true,
...)``, which asks the Sentinels for the master (go-redis' failover client) and counts each trigger's
list there, and KEDA's scalingModifiers formula. The messages are real Celery/kombu sends through the
Sentinels (``sentinel://`` URL, ``master_name`` and the Sentinels' password in transport options), at
every priority step of kombu's Redis transport. Shared by tests/runtime/test_keda_sentinel_backlog.py
and ``make bench`` (KEDA through Sentinel).
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from celery import Celery
from kombu.entity import Exchange, Queue

from celery_platform.builders.secret_keys import REDIS_PASSWORD, SENTINEL_PASSWORD
from celery_platform.config.sentinel import SentinelSpec
from tests.keda_tools import QUEUES, SENT, keda_backlog
from tests.runtime.harness.render import render_stack_file
from tests.runtime.harness.sentinel import SCENARIO_SPEC, SentinelCluster
from tests.runtime.harness.sentinel_pods import ScriptPod

REPO = Path(__file__).resolve().parents[3]
TOTAL = sum(count for _, _, count in SENT)


@functools.cache
def _rendered() -> str:
    """The dev stack with ``broker.type: sentinel`` and pool ``main`` autoscaled on (default, high): its
    ScaledObject and TriggerAuthentication as YAML.

    A Sentinel broker keeps its data on volumes (``redis.persistent``), which the dev quota's storage
    lines must then admit.
    """
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    config = document["config"]
    config["celery-platform:broker"] = {"type": "sentinel"}
    config["celery-platform:redis"]["persistent"] = True
    config["celery-platform:quota"] |= {
        "persistentVolumeClaims": 10,
        "requestsStorage": "20Gi",
        "pods": 30,
        "requestsCpu": "4",
        "requestsMemory": "8Gi",
        "limitsCpu": "8",
        "limitsMemory": "16Gi",
    }
    main, other = config["celery-platform:pools"][:2]
    other["queues"] = [q for q in main["queues"] if q not in QUEUES] + other["queues"]
    main["queues"] = list(QUEUES)
    del main["replicas"]
    main["autoscaling"] = {"minReplicas": 0, "maxReplicas": 5}
    docs = render_stack_file("dev", document)
    [scaled] = [d for d in docs if d["kind"] == "ScaledObject" and d["spec"]["scaleTargetRef"]["name"] == "celery-main"]
    [auth] = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    return yaml.safe_dump_all([scaled, auth])


def scaled_object() -> dict[str, Any]:
    """A fresh copy of the rendered ScaledObject (tests change it)."""
    doc: dict[str, Any] = next(yaml.safe_load_all(_rendered()))
    return doc


def trigger_authentication() -> dict[str, Any]:
    """A fresh copy of the rendered TriggerAuthentication."""
    doc: dict[str, Any] = list(yaml.safe_load_all(_rendered()))[1]
    return doc


def master_name() -> str:
    """The master's name that the rendered triggers ask the Sentinels for (one for every trigger)."""
    [name] = {t["metadata"]["sentinelMaster"] for t in scaled_object()["spec"]["triggers"]}
    return str(name)


def sentinel_spec() -> SentinelSpec:
    """The scenarios' Sentinel settings, with the master's name that the rendered triggers ask for."""
    return replace(SCENARIO_SPEC, master_name=master_name())


def auth_params(cluster: SentinelCluster) -> dict[str, str]:
    """What KEDA resolves from the rendered TriggerAuthentication: each parameter from its Secret key, the
    platform Secret's keys holding ``cluster``'s passwords."""
    values = {REDIS_PASSWORD: cluster.password, SENTINEL_PASSWORD: cluster.sentinel_password}
    refs = trigger_authentication()["spec"]["secretTargetRef"]
    return {ref["parameter"]: values[ref["key"]] for ref in refs}


def producer(cluster: SentinelCluster) -> Celery:
    """A producer of the sample app's tasks, configured for Sentinel as the platform configures apps."""
    app = Celery("keda-sentinel-client", broker=cluster.url())
    app.conf.broker_transport_options = cluster.transport_options()
    app.conf.task_queues = [Queue(q, Exchange(q), routing_key=q) for q in QUEUES]  # type: ignore[no-untyped-call]
    return app


def enqueue(app: Celery) -> None:
    """Send every message of :data:`SENT` through the Sentinels."""
    for queue, priority, count in SENT:
        for _ in range(count):
            options = {} if priority is None else {"priority": priority}
            app.send_task("sample_app.tasks.short_task", args=(1, 2), queue=queue, **options)


def kombu_sizes(app: Celery) -> dict[str, int]:
    """Each queue's size as kombu reports it (passive declare: LLEN summed over its priority lists)."""
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        return {q: channel.queue_declare(q, passive=True).message_count for q in QUEUES}


def replicated(cluster: SentinelCluster) -> int:
    """Wait until every replica has acknowledged everything the master holds; return how many did.

    Replication is in order: a marker written after the messages and acknowledged by a replica (WAIT)
    means that replica holds the messages too, so a SIGKILL loses none of them.
    """
    master = cluster.node_client(cluster.master())
    master.set("keda-sentinel:replicated", str(time.time()))
    acknowledged: int = master.wait(cluster.replicas, 10_000)
    master.close()
    return acknowledged


def addresses(cluster: SentinelCluster) -> str:
    """Every Sentinel as ``host:port,host:port,...``: the value of a redis-sentinel trigger's ``addresses``."""
    return ",".join(f"{host}:{port}" for host, port in cluster.sentinel_addresses)


def run_keda(
    scaled_object: dict[str, Any], cluster: SentinelCluster, auth: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """keda-backlog on ``scaled_object``, its ``addresses`` replaced by the local Sentinels'.

    ``auth`` stands in for the TriggerAuthentication's resolved parameters; default: the rendered
    TriggerAuthentication's (:func:`auth_params`).
    """
    if auth is None:
        auth = auth_params(cluster)
    return keda_backlog(
        {"scaledObject": scaled_object, "authParams": auth, "metadataOverrides": {"addresses": addresses(cluster)}}
    )


def read(scaled_object: dict[str, Any], cluster: SentinelCluster) -> dict[str, Any]:
    """KEDA's reading through the Sentinels; raises with KEDA's error if it fails."""
    done = run_keda(scaled_object, cluster)
    if done.returncode != 0:
        raise RuntimeError(f"keda-backlog failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@dataclass
class AfterKill:
    """What KEDA read after the primary's SIGKILL, and when."""

    killed: ScriptPod
    reading: dict[str, Any] | None = None
    seconds: float | None = None
    """From the SIGKILL to the first reading equal to the expected backlog."""
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    """KEDA's errors (last line) and wrong readings before that, in order."""

    def summary(self) -> str:
        took = "never" if self.seconds is None else f"{self.seconds:.2f} s"
        first = f"; first failure: {self.failures[0]}" if self.failures else ""
        return f"SIGKILL to KEDA's first correct read {took}, {self.attempts} keda-backlog runs{first}"


def read_after_kill(
    scaled_object: dict[str, Any], cluster: SentinelCluster, expected: dict[str, int], timeout: float = 60
) -> AfterKill:
    """SIGKILL the master, then run keda-backlog until it reads ``expected`` (or ``timeout`` passes).

    Each run is a fresh scaler, as KEDA's operator rebuilds one after a failed read; the operator's own
    polling interval is not counted (it adds up to ``pollingInterval`` seconds in a cluster).
    """
    result = AfterKill(killed=cluster.master())
    result.killed.kill()
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        result.attempts += 1
        done = run_keda(scaled_object, cluster)
        if done.returncode == 0:
            reading = json.loads(done.stdout)
            if reading["triggers"] == {name: float(n) for name, n in expected.items()}:
                result.seconds = time.monotonic() - start
                result.reading = reading
                return result
            result.failures.append(f"read {reading['triggers']}")
        else:
            result.failures.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no stderr")
        time.sleep(0.1)
    return result
