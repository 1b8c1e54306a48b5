"""Scenario 3, shutdown mid-task: SIGTERM finishes the task; SIGKILL with acks_late redelivers it.

Shortened on the dev stack: ``longestTaskSeconds`` 120 → 10, so the grace period is 40 s. The
visibility timeout keeps its floor of 3600 s (not a config knob): after a SIGKILL the unacked
message would wait an hour in Redis, so the test ages that message's entry in kombu's
``unacked_index`` by the visibility timeout instead of waiting (a broker clock fast-forward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

OVERRIDES = {"longestTaskSeconds": 10}
# Long enough that SIGTERM and SIGKILL land mid-task (both tests wait until the tasks have STARTED).
TASK_SECONDS = 4


def test_sigterm_during_long_tasks_finishes_them_within_the_grace_period_and_loses_nothing(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    (pod,) = node.scale_up("celery-io")
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()
    client = celery_client(node.broker.url(), ["reports"])
    # Two run (concurrency 2), a third waits: in the queue or prefetched, never started.
    sent = [client.send_task("sample_app.tasks.long_task", args=(TASK_SECONDS,), queue="reports") for _ in range(3)]
    assert wait_until(lambda: sum(r.state == "STARTED" for r in sent) == 2, timeout=15)

    ended = pod.delete()  # SIGTERM to PID 1, SIGKILL only after terminationGracePeriodSeconds
    assert not ended.killed and ended.exit_code == 0, pod.log()
    assert ended.seconds < pod.grace_seconds
    assert sum(r.state == "SUCCESS" for r in sent) >= 2, [r.state for r in sent]

    # The next pod of the rollout takes whatever was not started; every task has one result.
    (fresh,) = node.scale_up("celery-io")
    assert wait_until(lambda: all(r.state == "SUCCESS" for r in sent), timeout=60), fresh.describe()
    assert [r.get(timeout=1) for r in sent] == [TASK_SECONDS] * 3
    assert len(node.broker.client().keys("celery-task-meta-*")) == 3
    client.close()


def test_sigkill_mid_task_with_acks_late_redelivers_the_task_after_the_visibility_timeout(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    (pod,) = node.scale_up("celery-io")
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()
    redis = node.broker.client()
    client = celery_client(node.broker.url(), ["reports"])
    sent = [client.send_task("sample_app.tasks.long_task", args=(TASK_SECONDS,), queue="reports") for _ in range(2)]
    assert wait_until(lambda: all(r.state == "STARTED" for r in sent), timeout=15)

    pod.kill_container()  # an OOM kill or a node crash: every process at once, no warm shutdown
    assert wait_until(lambda: pod.restarts == 1, timeout=10), pod.describe()
    # Not lost: both messages are parked, unacked, in Redis.
    assert redis.hlen("unacked") == 2 and redis.zcard("unacked_index") == 2
    assert all(r.state == "STARTED" for r in sent)

    # Fast-forward the broker's clock for these messages by the rendered visibility timeout.
    visibility = int(pod.main.env["CELERY_VISIBILITY_TIMEOUT_SECONDS"])
    for tag, score in redis.zrange("unacked_index", 0, -1, withscores=True):
        redis.zadd("unacked_index", {tag: score - visibility - 1})
    # The restarted worker restores them (kombu scans every 10 s) and runs them again.
    assert wait_until(lambda: all(r.state == "SUCCESS" for r in sent), timeout=60), pod.describe() + pod.log()
    assert [r.get(timeout=1) for r in sent] == [TASK_SECONDS] * 2
    # acks_late: the worker acks after it has stored the result, so the ack may trail the SUCCESS state.
    assert wait_until(lambda: redis.hlen("unacked") == 0, timeout=10), redis.hkeys("unacked")
    assert pod.probe_restarts == {"liveness": 0, "startup": 0}
    client.close()
