"""Scenario 1, broker late: the prod main pool waits for Redis instead of crash-looping.

Nothing is shortened in the render: the prod stack as committed, probes and all. Redis is 8 s late:
four rounds of the init container's 2 s wait loop, which must hold the workers back all that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.conftest import RedisServer
    from tests.runtime.harness import Kubelet

REDIS_LATE_SECONDS = 8


def test_all_three_prod_main_workers_become_ready_without_probe_restarts_when_redis_starts_late(
    kubelet: Callable[..., Kubelet], redis_server: Callable[..., RedisServer]
) -> None:
    broker = redis_server(start=False)
    node = kubelet("prod", broker=broker)
    pods = node.scale_up("celery-main")
    assert len(pods) == 3, "the prod main pool is rendered with 3 replicas"

    time.sleep(REDIS_LATE_SECONDS)
    assert not any(p.in_main for p in pods), "a worker started before its broker answered"
    broker.start()

    assert wait_until(lambda: all(p.ready for p in pods), timeout=90), "\n".join(p.describe() for p in pods)
    assert [p.restarts for p in pods] == [0, 0, 0], "\n".join(p.describe() for p in pods)
    assert [p.probe_restarts for p in pods] == [{"liveness": 0, "startup": 0}] * 3

    client = celery_client(broker.url(), ["default"])
    results = [client.send_task("sample_app.tasks.short_task", args=(i, 1), queue="default") for i in range(6)]
    assert [r.get(timeout=30) for r in results] == [i + 1 for i in range(6)]
    client.close()
