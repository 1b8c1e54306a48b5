"""A real ``celery beat`` started through the hooks module's ``app``, probed with the real argv."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.runtime.conftest import Service

HEARTBEAT_MAX_AGE_SECONDS = 3  # conftest.BEAT_HEARTBEAT_MAX_AGE_SECONDS
MARGIN_SECONDS = 2.5
WaitUntil = Callable[..., bool]


@pytest.mark.parametrize(
    ("scheduler_args", "scheduler_class"),
    [((), "celery.beat.PersistentScheduler"), (("--scheduler", "celery.beat:Scheduler"), "celery.beat.Scheduler")],
    ids=["persistent-scheduler", "in-memory-scheduler-without-a-schedule-file"],
)
def test_beat_passes_liveness_while_its_scheduling_loop_runs_whatever_the_scheduler_class(
    start_beat: Callable[..., Service], scheduler_args: tuple[str, ...], scheduler_class: str
) -> None:
    beat = start_beat(extra_args=scheduler_args)
    assert beat.probe("readiness") == 0
    assert beat.passes_liveness_throughout(seconds=HEARTBEAT_MAX_AGE_SECONDS + 1)
    log = beat.process.log()
    assert f"scheduler -> {scheduler_class}\n" in log, "the user's scheduler class must stay in place"
    assert "Sending due task periodic-task" in log


def test_beat_fails_liveness_when_frozen_and_passes_again_when_it_resumes(
    start_beat: Callable[..., Service], wait_until: WaitUntil
) -> None:
    beat = start_beat()
    beat.process.send(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        failed = wait_until(lambda: beat.probe("liveness") != 0, timeout=HEARTBEAT_MAX_AGE_SECONDS + MARGIN_SECONDS)
        assert failed, "liveness still passed although beat was stopped"
        assert time.monotonic() - stopped_at >= HEARTBEAT_MAX_AGE_SECONDS - 1
    finally:
        beat.process.send(signal.SIGCONT)
    assert wait_until(lambda: beat.probe("liveness") == 0, timeout=3)


def test_beat_sends_the_periodic_task_to_a_worker_and_exits_zero_on_sigterm(
    start_beat: Callable[..., Service], start_worker: Callable[..., Service], wait_until: WaitUntil
) -> None:
    worker = start_worker()
    beat = start_beat(broker=worker.broker)
    redis = worker.broker.client()
    assert wait_until(lambda: len(redis.keys("celery-task-meta-*")) >= 2, timeout=10), beat.process.log()
    beat.process.send(signal.SIGTERM)
    assert beat.process.wait(timeout=10) == 0, beat.process.log()


def test_fails_when_the_user_app_is_not_named(start_beat: Callable[..., Service]) -> None:
    beat = start_beat(app="no_such_module", wait_ready=False)
    assert beat.process.wait(timeout=20) != 0
    assert "CELERY_PLATFORM_APP='no_such_module'" in beat.process.log()
    assert beat.probe("startup") != 0
