"""Scenario: a worker that stops consuming a queue turns unready and is restarted (issue 12).

``celery control cancel_consumer high`` (the real CLI, as an operator would type it) leaves the main
pool's worker alive, its event loop turning, but with no consumer for one of the queues it was
started with: before issue 12, every probe stayed green while ``high`` piled up.

Shortened on the dev stack like the frozen-worker scenario: ``heartbeatMaxAgeSeconds`` 60 → 10 (the
smallest the config accepts) and ``longestTaskSeconds`` 120 → 5. Probe periods, thresholds and
timeouts are the rendered ones; the windows below are computed from them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.runtime.harness import SAMPLE_APP_DIR, celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

OVERRIDES = {"heartbeatMaxAgeSeconds": 10, "longestTaskSeconds": 5}
QUEUE = "high"


def probe_window(probe: dict[str, Any]) -> float:
    """The longest a probe can take to give up once its check fails: its failing ticks and a timeout."""
    return float(probe["periodSeconds"] * probe["failureThreshold"] + probe["timeoutSeconds"])


def cancel_consumer(pod_env: dict[str, str], queue: str) -> str:
    """Run ``celery -A sample_app control cancel_consumer <queue>`` with the pod's env; return its output."""
    celery = str(Path(sys.executable).parent / "celery")
    env = {**os.environ, **pod_env}
    done = subprocess.run(
        [celery, "-A", "sample_app", "control", "cancel_consumer", queue, "--timeout", "5"],
        env=env,
        cwd=SAMPLE_APP_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_worker_whose_queue_consumer_is_cancelled_turns_unready_within_one_probe_window_and_is_restarted(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    pod = node.create_pod("celery-main")
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()
    client = celery_client(node.broker.url(), [QUEUE])
    assert client.send_task("sample_app.tasks.urgent_task", args=("before",), queue=QUEUE).get(timeout=20)

    container = node.pod_spec("celery-main")["containers"][0]
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    max_age = int(liveness["exec"]["command"][-1])
    output = cancel_consumer(pod.main.env, QUEUE)
    cancelled_at = time.monotonic()
    assert "no longer consuming from" in output, output

    # Unready within one readiness window: the hooks remove the ready file on their next tick (1 s).
    assert wait_until(lambda: not pod.ready, timeout=1 + probe_window(readiness)), pod.describe() + pod.log()
    # Restarted by liveness once the heartbeat is older than the max age, plus the liveness window.
    assert wait_until(lambda: pod.kills, timeout=max_age + 1 + probe_window(liveness) + 5), pod.describe()
    assert pod.kills[0].reason == "liveness", pod.describe()
    assert pod.kills[0].decided_at - cancelled_at >= max_age, pod.describe()

    # The fresh container consumes the queue again: a task sent there runs, and the pod is ready.
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()
    assert client.send_task("sample_app.tasks.urgent_task", args=("after",), queue=QUEUE).get(timeout=30)
    assert pod.restarts == 1 and pod.probe_restarts == {"liveness": 1, "startup": 0}, pod.describe()
    client.close()


def test_a_busy_worker_with_every_child_in_a_long_task_stays_ready_and_alive(kubelet: Callable[..., Kubelet]) -> None:
    node = kubelet("dev", OVERRIDES)
    pod = node.create_pod("celery-io")
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()
    container = node.pod_spec("celery-io")["containers"][0]
    concurrency = int(container["args"][container["args"].index("--concurrency") + 1])
    max_age = int(container["livenessProbe"]["exec"]["command"][-1])
    # Busy for longer than the readiness window and the liveness max age plus its window together.
    seconds = max(probe_window(container["readinessProbe"]), max_age + probe_window(container["livenessProbe"])) + 5
    client = celery_client(node.broker.url(), ["media"])
    tasks = [
        client.send_task("sample_app.tasks.process_media", args=(seconds,), queue="media") for _ in range(concurrency)
    ]
    assert wait_until(lambda: all(r.state == "STARTED" for r in tasks), timeout=15), pod.describe()
    before = {kind: len(pod.probe_results(kind)) for kind in ("readiness", "liveness")}
    time.sleep(seconds - 5)
    for kind, start in before.items():
        results = pod.probe_results(kind)[start:]
        assert len(results) >= 3 and all(r.exit_code == 0 for r in results), pod.describe()
    assert pod.ready and pod.restarts == 0 and all(r.state == "STARTED" for r in tasks), pod.describe()
    assert [r.get(timeout=30) for r in tasks] == [seconds] * concurrency
    client.close()
