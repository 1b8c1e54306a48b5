"""Scenario 2, frozen worker: liveness restarts a stopped main process, never a busy one.

Shortened on the dev stack: ``heartbeatMaxAgeSeconds`` 60 → 10 (the smallest the config accepts), so
that liveness gives up within 10 + 1 + 3 x 10 s instead of 60 + 1 + 3 x 10 s; ``longestTaskSeconds``
120 → 5, so that the pod's grace period is 35 s instead of 150 s; a stopped process cannot act on
SIGTERM, and the liveness probe's own 30 s grace is what it runs out. The busy worker's tasks run
longer than that on purpose: the longest task only sets the grace period and the visibility timeout,
which this test does not exercise on it.
Probe periods, thresholds and timeouts are the rendered ones.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

OVERRIDES = {"heartbeatMaxAgeSeconds": 10, "longestTaskSeconds": 5}
BUSY_TASK_SECONDS = 60


def _liveness_window(pod_spec: dict[str, object]) -> tuple[float, float]:
    """Earliest and latest time after a freeze at which liveness may give up, from the rendered probe."""
    probe = pod_spec["containers"][0]["livenessProbe"]  # type: ignore[index]
    max_age = int(probe["exec"]["command"][-1])
    period, failures, timeout = probe["periodSeconds"], probe["failureThreshold"], probe["timeoutSeconds"]
    # Stale after max_age (+1 s of mtime truncation); the first failing tick comes within one period,
    # then failureThreshold - 1 more periods; a probe may take up to its timeout.
    return float(max_age), float(max_age + 1 + period * failures + timeout)


def test_a_frozen_worker_fails_liveness_within_its_window_while_a_worker_with_all_children_busy_keeps_passing(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    frozen, busy = node.create_pod("celery-main"), node.create_pod("celery-io")
    assert wait_until(lambda: frozen.ready and busy.ready, timeout=60), frozen.describe() + "\n" + busy.describe()

    # Every child of the io worker busy with a long task (its concurrency, read from the render).
    io_args = node.pod_spec("celery-io")["containers"][0]["args"]
    concurrency = int(io_args[io_args.index("--concurrency") + 1])
    client = celery_client(node.broker.url(), ["media"])
    long_tasks = [
        client.send_task("sample_app.tasks.process_media", args=(BUSY_TASK_SECONDS,), queue="media")
        for _ in range(concurrency)
    ]
    assert wait_until(lambda: all(r.state == "STARTED" for r in long_tasks), timeout=15)
    busy_liveness_before = len(busy.probe_results("liveness"))

    frozen.signal_main(signal.SIGSTOP)
    frozen_at = time.monotonic()
    earliest, latest = _liveness_window(node.pod_spec("celery-main"))
    assert wait_until(lambda: frozen.kills, timeout=latest + 5), frozen.describe()
    kill = frozen.kills[0]
    assert kill.reason == "liveness"
    assert earliest <= kill.decided_at - frozen_at <= latest, frozen.describe()

    # A stopped process cannot act on SIGTERM: it is SIGKILLed after the liveness probe's own grace
    # period, which is shorter than the pod's (that one covers the longest task).
    grace = frozen.kill_grace_seconds("liveness")
    assert grace < frozen.grace_seconds
    assert wait_until(lambda: kill.termination is not None, timeout=grace + 10), frozen.describe()
    assert kill.termination is not None
    assert kill.termination.killed and kill.termination.seconds >= grace - 0.5, kill.termination

    # The busy worker passed every liveness probe meanwhile, from the freeze through the kill (counted
    # once the kill is over, so that a probe still running at the decision is not missed).
    busy_results = busy.probe_results("liveness")[busy_liveness_before:]
    assert len(busy_results) >= 3, busy.describe()
    assert all(r.exit_code == 0 for r in busy_results), busy.describe()
    assert busy.restarts == 0 and busy.ready, busy.describe()
    # The frozen worker comes back as a fresh container, started up again.
    assert wait_until(lambda: frozen.started, timeout=60), frozen.describe()
    assert frozen.restarts == 1 and frozen.probe_restarts == {"liveness": 1, "startup": 0}, frozen.describe()
    assert all(r.state in {"STARTED", "SUCCESS"} for r in long_tasks)
    client.close()
