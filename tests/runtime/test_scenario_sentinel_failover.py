"""Failover under load: the Sentinel primary is SIGKILLed while tasks flow; all recovers, no loss goes uncounted.

Our own rendered data-node and Sentinel pods (``tests/runtime/harness/sentinel.py``: real redis-server
and redis-sentinel processes; 1 primary, 2 replicas, 3 Sentinels, quorum 2, auth on
all, ``min-replicas-to-write 1``, ``min-replicas-max-lag 5``), a real worker, beat and exporter run
with the platform's hooks, exporter module and probes, configured only through the env the platform
gives a Sentinel client. The harness (``tests/runtime/harness/failover.py``) explains what is
counted. Only correctness is asserted here; the times go to ``make bench`` (sentinel failover).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.runtime.harness.failover import failover_under_load

if TYPE_CHECKING:
    from tests.runtime.harness.sentinel import SentinelCluster


def test_worker_beat_and_exporter_recover_from_a_primary_sigkill_under_load_and_every_task_is_accounted_for(
    sentinel_cluster: Callable[..., SentinelCluster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = sentinel_cluster()
    result = failover_under_load(tmp_path / "platform", cluster, on_fail=pytest.fail)
    with capsys.disabled():
        print(f"\nsentinel failover under load: {result.summary()}")
    why = f"{result}\n{result.describe()}\n{cluster.logs()}"

    # Counts reconcile: every acknowledged task either ran or is counted lost, and a loss can only be
    # a write acknowledged inside the window that min-replicas-max-lag leaves open.
    assert result.acknowledged > 0, why
    assert result.completed + len(result.lost) == result.acknowledged, why
    assert result.lost_outside_bound_window == [], why
    assert len(result.lost) <= result.acknowledged_in_bound_window, why
    # Recovery: tasks sent after the failover ran, beat kept scheduling through the new master, and
    # the worker, beat and exporter pods are ready again; a restart, if any, came from the kubelet
    # (a container exit, or a liveness or startup probe), never from the test.
    assert result.first_consumed_seconds is not None, why
    assert result.periodic_after_failover, why
    assert result.ready_after == dict.fromkeys(("celery-main", "celery-beat", "celery-exporter"), True), why
