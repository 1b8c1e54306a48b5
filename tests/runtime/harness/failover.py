"""Failover under load: a worker, beat and the exporter on a Sentinel deployment while its primary is SIGKILLed.

Shared by the runtime test (which asserts on correctness) and ``make bench`` (which reports the
times). The prod stack's worker, beat and exporter pods run through the tiny kubelet exactly as
rendered (hooks module, exporter module, probes with their timings, restarts with back-off), with
only the env the platform gives a Sentinel client: ``CELERY_BROKER_URL`` (every Sentinel) plus
``CELERY_BROKER_SENTINEL_MASTER`` and ``CELERY_BROKER_SENTINEL_PASSWORD``. The sample app reads only
the URL; the hooks module and the exporter add the rest.

What is counted, exactly:

* A task is **acknowledged** when ``send_task`` returned: the master replied to its LPUSH. A send
  that raised was refused, and the producer knows it (it may retry). Each task carries its own
  token, and ``journal_task`` appends the token to a file outside Redis when it runs.
* **Lost**: acknowledged and never run. **Duplicated**: run more than once (acks_late: at least once).
* Redis replication is asynchronous, so an LPUSH acknowledged just before the kill may never reach
  the replica that Sentinel promotes. ``min-replicas-to-write 1`` with ``min-replicas-max-lag L``
  has the master refuse writes once no replica has acknowledged its stream for L seconds (replicas
  acknowledge every second), so whatever is acknowledged and lost was acknowledged in the last
  L + 1 seconds before the kill: the **bound**.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from celery_platform.exporter.celery_platform_exporter import restore_unacked
from tests.runtime.harness.pod import Pod
from tests.runtime.harness.render import Manifests, render
from tests.runtime.harness.scenario import wait_until
from tests.runtime.harness.sentinel import SentinelCluster
from tests.runtime.harness.translation import Cluster, test_secret_values
from tests.runtime.harness.workloads import Kubelet

JOURNAL_TASK = "sample_app.tasks.journal_task"
WORKLOADS = ("celery-main", "celery-beat", "celery-exporter")


#: Where ``journal_task`` writes: the pod's own /tmp emptyDir (the harness maps it to a directory per pod).
JOURNAL = "/tmp/journal"


def sentinel_kubelet(workdir: Path, cluster: SentinelCluster, exporter_port: int) -> Kubelet:
    """The prod stack's worker, beat and exporter pods as rendered, wired to ``cluster`` through Sentinel.

    The rendered containers (command, args, probes with their timings, volumes, the hooks and exporter
    ConfigMaps) run unchanged. What a ``broker.type: sentinel`` render gives them instead of the
    standalone Service is stood in for: the broker URL Secret holds the ``sentinel://`` URL of every
    Sentinel, and the env gains ``CELERY_BROKER_SENTINEL_MASTER`` and ``CELERY_BROKER_SENTINEL_PASSWORD``.
    The standalone wait-for-broker init container (which pings the ``redis`` Service) is left out.
    Beat's max interval is 2 s and the exporter listens on a free port, as in the metrics scenario.
    """
    overrides = {"monitoring": f"port: {exporter_port}", "beat": "maxIntervalSeconds: 2"}
    manifests = Manifests(copy.deepcopy(render("prod", overrides)))
    extra = {**cluster.extra_env(), "SAMPLE_APP_JOURNAL": JOURNAL}
    for name in WORKLOADS:
        spec = manifests.workload(name)["spec"]["template"]["spec"]
        spec["initContainers"] = []
        spec["containers"][0]["env"] += [{"name": k, "value": v} for k, v in extra.items()]
    secrets = {**test_secret_values(cluster.password, "redis.invalid", 6379), "CELERY_BROKER_URL": cluster.url()}
    node_cluster = Cluster(manifests=manifests, secret_values=secrets, service_addresses={})
    return Kubelet(manifests, node_cluster, workdir, broker=cluster)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def exporter_status(port: int, path: str = "/readyz") -> int:
    """The exporter's HTTP status on ``path`` (-1 when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except OSError as exc:
        code = getattr(exc, "code", None)
        return int(code) if code is not None else -1


def client_app(cluster: SentinelCluster) -> Celery:
    """A producer of the sample app's tasks, configured for Sentinel as the platform configures apps."""
    app = Celery("failover-client", broker=cluster.url())
    app.conf.broker_transport_options = cluster.transport_options()
    return app


@dataclass
class Sends:
    """What the producer did: each token's send time and whether the master acknowledged it."""

    acknowledged: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    refused_at: dict[str, float] = field(default_factory=dict)
    took: dict[str, float] = field(default_factory=dict)
    """Seconds each send took (a send waits while the master pauses writes, or while Celery retries)."""

    def refused_seconds(self) -> tuple[float, float]:
        """Seconds during which sends were refused, in all and the longest spell: each spell runs from its
        first refusal to the next acknowledged send (or its last refusal, when none followed)."""
        events = sorted(
            [(at, True) for at in self.acknowledged.values()] + [(at, False) for at in self.refused_at.values()]
        )
        spells: list[float] = []
        began: float | None = None
        last_refusal = 0.0
        for at, ok in events:
            if not ok:
                began = at if began is None else began
                last_refusal = at
            elif began is not None:
                spells.append(at - began)
                began = None
        if began is not None:
            spells.append(last_refusal - began)
        return sum(spells), max(spells, default=0.0)


def produce(client: Celery, stop: threading.Event, sends: Sends, every: float, prefix: str) -> None:
    """Send ``journal_task`` every ``every`` seconds until ``stop``, recording each outcome."""
    number = 0
    while not stop.is_set():
        token = f"{prefix}-{number}"
        number += 1
        began = time.monotonic()
        try:
            client.send_task(JOURNAL_TASK, args=(token,), queue="default", task_id=token)
        except Exception as exc:  # refused: the producer sees it and could retry; not a silent loss
            sends.refused[token] = repr(exc)
            sends.refused_at[token] = time.monotonic()
        else:
            sends.acknowledged[token] = time.monotonic()
        sends.took[token] = time.monotonic() - began
        stop.wait(every)


class JournalWatch:
    """Records when each token first appears in a journal (the task ran), polling the files."""

    def __init__(self, journals: list[Path]) -> None:
        self.journals = journals
        self.first_seen: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._offsets = dict.fromkeys(journals, 0)
        self._thread = threading.Thread(target=self._run, name="journal-watch", daemon=True)

    def __enter__(self) -> JournalWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()

    def _read(self) -> None:
        for journal in self.journals:
            if not journal.exists():
                continue
            with journal.open("rb") as handle:
                handle.seek(self._offsets[journal])
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[journal] += len(complete)
            now = time.monotonic()
            for token in complete.decode().split():
                self.first_seen.setdefault(token, now)
                self.counts[token] += 1

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._read()


@dataclass
class FailoverResult:
    """Everything measured in one failover under load."""

    acknowledged: int
    refused: int
    completed: int
    lost: list[str]
    redelivered_after_visibility_timeout: list[str]
    """Delivered to the worker before the kill, in flight: unacknowledged on the new master, so redelivered
    once older than the visibility timeout (by a worker's or the exporter's sweep); counted as completed."""
    duplicated: list[str]
    ran_unacknowledged: list[str]
    """Sends that raised, yet ran: the write reached Redis, its reply did not reach the producer."""
    acknowledged_in_bound_window: int
    """Acknowledged in the last min-replicas-max-lag + 1 seconds before the kill: what may be lost."""
    lost_outside_bound_window: list[str]
    promotion_seconds: float
    first_consumed_seconds: float | None
    """From the SIGKILL to the first run of a task acknowledged after it."""
    restarts: dict[str, int]
    """Container restarts per workload: an exit (restartPolicy) or a liveness/startup probe kill."""
    probe_kills: dict[str, list[str]]
    ready_after: dict[str, bool]
    periodic_after_failover: bool
    pods: list[Pod] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        first = f"{self.first_consumed_seconds:.2f} s" if self.first_consumed_seconds is not None else "never"
        return (
            f"promotion {self.promotion_seconds:.2f} s, first task consumed {first} after the SIGKILL; "
            f"sent {self.acknowledged + self.refused} (acknowledged {self.acknowledged}, refused {self.refused}), "
            f"completed {self.completed} ({len(self.redelivered_after_visibility_timeout)} of them only after the "
            f"visibility timeout), lost {len(self.lost)} (bound: {self.acknowledged_in_bound_window} "
            f"acknowledged in the last window), duplicated {len(self.duplicated)}, "
            f"ran though refused {len(self.ran_unacknowledged)}; restarts {self.restarts}, "
            f"probe kills {self.probe_kills}"
        )

    def describe(self) -> str:
        return "\n".join(p.describe() + "\n" + p.log()[-6000:] for p in self.pods)


def unacked_task_ids(redis: Any) -> set[str]:
    """Task ids in kombu's ``unacked`` hash: each value is ``[message, exchange, routing key]`` in JSON."""
    return {json.loads(value)[0]["headers"]["id"] for value in redis.hvals("unacked")}


def drain_and_sweep(
    cluster: SentinelCluster, redis: Any, sends: Sends, watch: JournalWatch, pods: list[Pod]
) -> list[str]:
    """Wait until every acknowledged task ran, or the queue is empty, the pods ready and nothing ran for 5 s
    (a restarted worker may take its back-off first); then redeliver what sits in the unacked hash.

    Delivered to a worker and not acknowledged when its connection broke: kombu redelivers those once they
    are older than the visibility timeout (600 s here). The exporter's sweep is what does it when no worker
    does; it runs here with a 1 s timeout, which is what it does 600 s later with the real one. Returns the
    task ids it found there.
    """
    last = [len(watch.first_seen), time.monotonic()]

    def drained() -> bool:
        if set(sends.acknowledged) <= set(watch.first_seen):
            return True
        if len(watch.first_seen) != last[0]:
            last[:] = [len(watch.first_seen), time.monotonic()]
        ready = all(p.ready for p in pods)
        return bool(ready and redis.llen("default") == 0 and time.monotonic() - last[1] > 5)

    wait_until(drained, 180, interval=0.2)
    pending = sorted(unacked_task_ids(redis))
    if pending:
        sweeper = client_app(cluster)
        sweeper.conf.broker_transport_options = {**cluster.transport_options(), "visibility_timeout": 1}
        time.sleep(1.5)
        restore_unacked(sweeper)
        sweeper.close()
        wait_until(lambda: set(pending) <= set(watch.first_seen), 60)
    return pending


def failover_under_load(
    workdir: Path,
    cluster: SentinelCluster,
    *,
    before_seconds: float = 3.0,
    after_seconds: float = 6.0,
    every: float = 0.02,
    on_fail: Callable[[str], None] = lambda why: None,
) -> FailoverResult:
    """Run the platform on ``cluster``, send tasks, SIGKILL the primary mid-stream, and count everything."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    node = sentinel_kubelet(workdir / "kubelet", cluster, port)
    try:
        pods = {name: node.create_pod(name) for name in WORKLOADS}

        def why() -> str:
            return "\n".join(p.describe() + "\n" + p.log()[-4000:] for p in pods.values())

        if not wait_until(lambda: all(p.ready for p in pods.values()), 90):
            on_fail("worker, beat or exporter never became ready:\n" + why())
        client = client_app(cluster)
        sends, stop = Sends(), threading.Event()
        journal = pods["celery-main"].volume_dirs["tmp"] / JOURNAL.removeprefix("/tmp/")
        with JournalWatch([journal]) as watch:
            producer = threading.Thread(target=produce, args=(client, stop, sends, every, "t"), daemon=True)
            producer.start()
            time.sleep(before_seconds)
            old = cluster.master()
            killed_at = time.monotonic()
            old.kill()
            new = cluster.wait_for_new_master(old)
            promoted_at = time.monotonic()
            time.sleep(after_seconds)
            stop.set()
            producer.join(timeout=60)
            redis = cluster.node_client(new)
            pending = drain_and_sweep(cluster, redis, sends, watch, list(pods.values()))
        # Beat keeps sending its periodic task (every second) through the new master.
        results = len(redis.keys("celery-task-meta-*"))
        periodic_after_failover = wait_until(lambda: len(redis.keys("celery-task-meta-*")) > results, 30)
        ready_after = {name: wait_until(lambda p=pod: p.ready, 120) for name, pod in pods.items()}
        client.close()

        counts = watch.counts
        acknowledged = sends.acknowledged
        lost = sorted(t for t in acknowledged if t not in counts)
        window = cluster.min_replicas_max_lag_seconds + 1
        in_window = {t for t, at in acknowledged.items() if killed_at - window <= at <= killed_at}
        after = [watch.first_seen[t] for t, at in acknowledged.items() if at > killed_at and t in watch.first_seen]
        return FailoverResult(
            acknowledged=len(acknowledged),
            refused=len(sends.refused),
            completed=sum(1 for t in acknowledged if t in counts),
            lost=lost,
            redelivered_after_visibility_timeout=[t for t in pending if t in acknowledged],
            duplicated=sorted(t for t, n in counts.items() if n > 1),
            ran_unacknowledged=sorted(t for t in sends.refused if t in counts),
            acknowledged_in_bound_window=len(in_window),
            lost_outside_bound_window=[t for t in lost if t not in in_window],
            promotion_seconds=promoted_at - killed_at,
            first_consumed_seconds=(min(after) - killed_at) if after else None,
            restarts={name: pod.restarts for name, pod in pods.items()},
            probe_kills={name: [k.reason for k in pod.kills] for name, pod in pods.items()},
            ready_after=ready_after,
            periodic_after_failover=periodic_after_failover,
            pods=list(pods.values()),
        )
    finally:
        node.shutdown()


__all__ = [
    "FailoverResult",
    "JournalWatch",
    "Sends",
    "client_app",
    "drain_and_sweep",
    "failover_under_load",
    "produce",
    "sentinel_kubelet",
]
