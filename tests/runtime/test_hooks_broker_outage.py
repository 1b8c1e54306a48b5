"""How the heartbeats behave while Redis is down: the numbers that size the liveness probes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.runtime.conftest import Service

OUTAGE_SECONDS = 10
WaitUntil = Callable[..., bool]


def age(path: Path) -> float:
    """Seconds since path was last touched, as the liveness probe computes it (but not truncated)."""
    return time.time() - os.stat(path).st_mtime


def test_worker_and_beat_ride_out_a_ten_second_redis_outage(
    start_worker: Callable[..., Service],
    start_beat: Callable[..., Service],
    wait_until: WaitUntil,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = start_worker()
    beat = start_beat(broker=worker.broker)
    worker_heartbeat, beat_heartbeat = worker.state_dir / "worker.heartbeat", beat.state_dir / "beat.heartbeat"
    worker_ages, beat_ages = [], []

    def sample_for(seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            worker_ages.append(age(worker_heartbeat))
            beat_ages.append(age(beat_heartbeat))
            time.sleep(0.05)

    # Both connected and working before the outage: a periodic task has gone round trip.
    assert wait_until(lambda: worker.broker.client().keys("celery-task-meta-*"), timeout=10)
    worker.broker.stop()
    sample_for(OUTAGE_SECONDS)
    worker.broker.start()
    restarted_at = time.monotonic()
    # Until both heartbeats are fresh again: that is when the gap ends.
    sample_for(45, until=lambda: age(worker_heartbeat) < 1.2 and age(beat_heartbeat) < 1.2)
    with capsys.disabled():
        print(
            f"\nlongest heartbeat gap during a {OUTAGE_SECONDS} s Redis outage: "
            f"worker {max(worker_ages):.1f} s, beat {max(beat_ages):.1f} s; "
            f"worker fresh again {time.monotonic() - restarted_at:.1f} s after Redis came back"
        )

    assert worker.process.running(), worker.process.log()
    assert beat.process.running(), beat.process.log()
    assert wait_until(lambda: worker.probe("liveness") == 0 and beat.probe("liveness") == 0, timeout=5)
    result = worker.client.send_task("sample_app.tasks.short_task", args=[2, 3], queue="default")
    assert result.get(timeout=10) == 5
