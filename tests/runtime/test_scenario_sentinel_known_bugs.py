"""The two Celery reports about Sentinel and restarts, replayed on the rendered prod pods through Sentinel.

The broker is our own rendered Redis+Sentinel pods (``tests/runtime/harness/sentinel.py``).

* celery#6348, "no failover when the Sentinel master is lost": the master dies while the workers
  are idle (blocked in BRPOP, nothing in flight); after Sentinel promotes a replica, new tasks must
  be consumed.
* celery#8990, "workers stop consuming after a broker restart": the master restarts in place
  (SIGTERM with no preStop hook, as a process restart
  sends it; AOF on disk, the same port again); afterwards new tasks must be consumed.

Each scenario ends the same way: tasks sent after the event all run, and the worker, beat and
exporter pods are ready; a restart, if any, comes from the kubelet (container exit or probe), never
from the test, and is printed with the times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.runtime.harness import Pod, wait_until
from tests.runtime.harness.failover import JOURNAL, WORKLOADS, JournalWatch, client_app, free_port, sentinel_kubelet
from tests.runtime.harness.sentinel import SCENARIO_SPEC

if TYPE_CHECKING:
    from tests.runtime.harness.sentinel import SentinelCluster

IDLE_SECONDS = 5
IN_PLACE_SPEC = replace(SCENARIO_SPEC, down_after_milliseconds=5000, failover_timeout_milliseconds=20000)
TASKS = 20


@contextmanager
def platform_on(cluster: SentinelCluster, workdir: Path) -> Iterator[dict[str, Pod]]:
    node = sentinel_kubelet(workdir, cluster, free_port())
    try:
        pods = {name: node.create_pod(name) for name in WORKLOADS}
        assert wait_until(lambda: all(p.ready for p in pods.values()), 90), describe(pods)
        yield pods
    finally:
        node.shutdown()


def describe(pods: dict[str, Pod]) -> str:
    return "\n".join(p.describe() + "\n" + p.log()[-4000:] for p in pods.values())


def send_and_count(cluster: SentinelCluster, pods: dict[str, Pod], started: float) -> float:
    """Send TASKS journal tasks; assert that each runs; return the seconds from ``started`` to the first run."""
    journal = pods["celery-main"].volume_dirs["tmp"] / JOURNAL.removeprefix("/tmp/")
    client = client_app(cluster)
    tokens = [f"after-{i}" for i in range(TASKS)]
    with JournalWatch([journal]) as watch:
        for token in tokens:
            # Retried until the master takes writes again: a refused send is known to the producer.
            assert wait_until(lambda token=token: _sent(client, token), 60), f"{token} was never accepted"
        assert wait_until(lambda: set(tokens) <= set(watch.first_seen), 120), describe(pods)
    client.close()
    assert wait_until(lambda: all(p.ready for p in pods.values()), 120), describe(pods)
    return min(watch.first_seen[t] for t in tokens) - started


def _sent(client: object, token: str) -> bool:
    try:
        client.send_task("sample_app.tasks.journal_task", args=(token,), queue="default", task_id=token)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def test_celery_6348_idle_workers_consume_new_tasks_after_the_sentinel_master_is_lost(
    sentinel_cluster: Callable[..., SentinelCluster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = sentinel_cluster()
    with platform_on(cluster, tmp_path / "kubelet") as pods:
        time.sleep(IDLE_SECONDS)  # idle: every worker blocked in BRPOP on the master
        old = cluster.master()
        killed_at = time.monotonic()
        old.kill()
        new = cluster.wait_for_new_master(old)
        time.sleep(IDLE_SECONDS)  # still idle, now on a dead connection
        first = send_and_count(cluster, pods, killed_at)
        restarts = {name: (p.restarts, [k.reason for k in p.kills]) for name, p in pods.items()}
        with capsys.disabled():
            print(
                f"\ncelery#6348: {old.name} SIGKILLed, {new.name} promoted; first task run {first:.1f} s after the kill"
            )
            print(f"  (sent {IDLE_SECONDS} s after promotion); restarts (count, probe kills): {restarts}")


def test_celery_8990_workers_consume_after_the_master_restarts_in_place(
    sentinel_cluster: Callable[..., SentinelCluster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In place: back before the Sentinels hold it down. At the 1 s minimum the rendered start script may find
    # it held down and wait for a failover instead; the default detection (5 s) leaves room for the restart.
    cluster = sentinel_cluster(spec=IN_PLACE_SPEC)
    with platform_on(cluster, tmp_path / "kubelet") as pods:
        old = cluster.master()
        stopped_at = time.monotonic()
        old.stop()
        old.start()
        assert wait_until(lambda: _answers(cluster, old), 30), cluster.logs()
        first = send_and_count(cluster, pods, stopped_at)
        master = cluster.master()
        restarts = {name: (p.restarts, [k.reason for k in p.kills]) for name, p in pods.items()}
        with capsys.disabled():
            print(f"\ncelery#8990: {old.name} restarted in place; master now {master.name}; first task run ")
            print(f"  {first:.1f} s after the restart began; restarts (count, probe kills): {restarts}")


def _answers(cluster: SentinelCluster, node: object) -> bool:
    try:
        return bool(cluster.node_client(node).ping())  # type: ignore[arg-type]
    except Exception:
        return False
