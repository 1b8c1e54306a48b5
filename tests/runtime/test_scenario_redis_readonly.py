"""Scenario: Redis restarts as a read-only replica (an old primary back after a failover), so the
worker's consumer cannot come back; then it is made primary again.

How Celery 5.7 behaves, measured here: a plain restart is ridden out (test_scenario_redis_restart.py),
and could not be made to leave a live worker without its consumer. Against a read-only replica the
consumer's reconnect fails in kombu's restore_visible (SET of the unacked mutex: ReadOnlyError), which
Celery treats as unrecoverable: the worker exits, and the container crash-loops, never ready, instead
of sitting green with no consumer. The test pins that down, and that the pod recovers by itself once
Redis takes writes again. Shortened like the frozen-worker scenario.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

OVERRIDES = {"heartbeatMaxAgeSeconds": 10, "longestTaskSeconds": 5}
WATCH_SECONDS = 45


def test_a_worker_whose_redis_comes_back_read_only_is_never_ready_and_recovers_when_redis_takes_writes(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    pod = node.create_pod("celery-main")
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()

    node.broker.stop()
    time.sleep(3)
    node.broker.start()
    node.broker.client().execute_command("REPLICAOF", "127.0.0.1", "1")  # a primary that is not there
    readiness = node.pod_spec("celery-main")["containers"][0]["readinessProbe"]
    window = readiness["periodSeconds"] * readiness["failureThreshold"] + readiness["timeoutSeconds"]
    assert wait_until(lambda: not pod.ready, timeout=window + 5), pod.describe()
    since = time.monotonic()
    seen_ready = False
    while time.monotonic() - since < WATCH_SECONDS:
        seen_ready = seen_ready or pod.ready
        time.sleep(0.5)
    assert not seen_ready, pod.describe()
    assert pod.restarts >= 1 and "ReadOnlyError" in pod.log(), pod.describe()

    node.broker.client().execute_command("REPLICAOF", "NO", "ONE")
    # CrashLoopBackOff may hold the next start for up to 40 s at this point.
    assert wait_until(lambda: pod.ready, timeout=120), pod.describe()
    client = celery_client(node.broker.url(), ["default"])
    assert client.send_task("sample_app.tasks.short_task", args=(2, 3), queue="default").get(timeout=30) == 5
    client.close()
