"""Scenario 4, Redis restarts under running workers: they reconnect and go on consuming.

Nothing is shortened: the dev stack as committed (liveness max age 60 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

DOWN_SECONDS = 5


def test_workers_reconnect_after_a_redis_restart_and_go_on_consuming_without_a_liveness_restart(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev")
    pods = [node.create_pod("celery-main"), node.create_pod("celery-io")]
    assert wait_until(lambda: all(p.ready for p in pods), timeout=60), "\n".join(p.describe() for p in pods)
    client = celery_client(node.broker.url(), ["default", "email"])
    before = [client.send_task("sample_app.tasks.short_task", args=(1, 2), queue="default")]
    before.append(client.send_task("sample_app.tasks.send_email", args=("a@b.c",), queue="email"))
    assert [r.get(timeout=20) for r in before] == [3, "sent to a@b.c"]

    node.broker.stop()
    time.sleep(DOWN_SECONDS)
    node.broker.start()

    # Both pools consume again (the Redis is fresh: nothing of before survives, by design of the test).
    def both_consume() -> bool:
        after = [
            client.send_task("sample_app.tasks.short_task", args=(2, 2), queue="default"),
            client.send_task("sample_app.tasks.send_email", args=("x@y.z",), queue="email"),
        ]
        try:
            return [r.get(timeout=10) for r in after] == [4, "sent to x@y.z"]
        except Exception:
            return False

    assert wait_until(both_consume, timeout=60, interval=1), "\n".join(p.describe() + p.log() for p in pods)
    # Through at least one more liveness period after the reconnect: still no restart.
    period = node.pod_spec("celery-main")["containers"][0]["livenessProbe"]["periodSeconds"]
    time.sleep(period)
    assert [p.restarts for p in pods] == [0, 0], "\n".join(p.describe() for p in pods)
    assert all(p.running() and p.ready for p in pods)
    assert all(r.exit_code == 0 for p in pods for r in p.probe_results("liveness")[-1:])
    client.close()
