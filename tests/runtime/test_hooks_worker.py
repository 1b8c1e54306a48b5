"""A real Celery worker loaded with ``--include celery_platform_hooks``, probed with the real argv."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.runtime.conftest import CeleryProcess, RedisServer, Service

HEARTBEAT_MAX_AGE_SECONDS = 2  # conftest.WORKER_HEARTBEAT_MAX_AGE_SECONDS
# stat and date both truncate to whole seconds, and the probe itself takes a moment.
MARGIN_SECONDS = 2.5
WaitUntil = Callable[..., bool]


def test_worker_becomes_ready_and_its_heartbeat_stays_fresh(start_worker: Callable[..., Service]) -> None:
    worker = start_worker()
    assert worker.probe("readiness") == 0
    assert worker.passes_liveness_throughout(seconds=HEARTBEAT_MAX_AGE_SECONDS + 1.5)


def test_liveness_fails_when_the_main_process_is_frozen_and_passes_again_when_it_resumes(
    start_worker: Callable[..., Service], wait_until: WaitUntil
) -> None:
    worker = start_worker()
    assert worker.probe("liveness") == 0
    worker.process.send(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        failed = wait_until(lambda: worker.probe("liveness") != 0, timeout=HEARTBEAT_MAX_AGE_SECONDS + MARGIN_SECONDS)
        assert failed, "liveness still passed although the worker's main process was stopped"
        assert time.monotonic() - stopped_at >= HEARTBEAT_MAX_AGE_SECONDS - 1
    finally:
        worker.process.send(signal.SIGCONT)
    assert wait_until(lambda: worker.probe("liveness") == 0, timeout=3)


def test_liveness_keeps_passing_while_every_pool_child_runs_a_long_task(
    start_worker: Callable[..., Service], wait_until: WaitUntil
) -> None:
    worker = start_worker()
    results = [worker.client.send_task("sample_app.tasks.long_task", args=[4], queue="reports") for _ in range(2)]
    assert wait_until(lambda: all(r.state == "STARTED" for r in results), timeout=5), "tasks never started"
    assert worker.passes_liveness_throughout(seconds=HEARTBEAT_MAX_AGE_SECONDS + 1.5)
    assert [r.get(timeout=10) for r in results] == [4, 4]


def test_sigterm_lets_the_running_task_finish_removes_the_ready_file_and_exits_zero(
    start_worker: Callable[..., Service], wait_until: WaitUntil
) -> None:
    worker = start_worker()
    result = worker.client.send_task("sample_app.tasks.long_task", args=[2], queue="reports")
    assert wait_until(lambda: result.state == "STARTED", timeout=5)
    worker.process.send(signal.SIGTERM)
    assert worker.process.wait(timeout=15) == 0, worker.process.log()
    assert result.get(timeout=1) == 2
    assert not (worker.state_dir / "worker.ready").exists()
    assert worker.probe("readiness") != 0
    assert "Warm shutdown" in worker.process.log()


def test_a_stale_ready_file_is_removed_and_the_worker_waits_for_a_late_broker(
    start_worker: Callable[..., Service],
    redis_server: Callable[[], RedisServer],
    wait_until: WaitUntil,
    tmp_path: Path,
) -> None:
    broker = redis_server()
    broker.stop()
    # What a container killed by the OOM killer leaves behind in the pod's emptyDir.
    stale = tmp_path / "worker-state" / "worker.ready"
    stale.parent.mkdir()
    stale.touch()
    worker = start_worker(broker=broker, wait_ready=False)
    assert wait_until(lambda: not stale.exists(), timeout=15), worker.process.log()
    time.sleep(2)
    assert worker.process.running(), f"worker gave up on a missing broker:\n{worker.process.log()}"
    assert worker.probe("startup") != 0
    broker.start()
    worker.wait_for_startup()
    assert worker.client.send_task("sample_app.tasks.short_task", args=[2, 3], queue="default").get(timeout=10) == 5


def test_fails_when_the_field_encryption_key_is_not_a_fernet_key(
    start_celery: Callable[..., CeleryProcess],
    redis_server: Callable[[], RedisServer],
    app_env: Callable[[RedisServer], dict[str, str]],
) -> None:
    env = {**app_env(redis_server()), "FIELD_ENCRYPTION_KEY": "not-a-key"}
    process = start_celery(["celery", "-A", "sample_app", "worker", "--concurrency", "1"], env)
    assert process.wait(timeout=20) != 0
    assert "FIELD_ENCRYPTION_KEY: not a Fernet key" in process.log()
