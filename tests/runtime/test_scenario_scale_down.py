"""Scenario (issue 11, item 3): a pool scaled 0 → N → 0 on its queue's backlog never loses a task.

KEDA (a ScaledObject with minReplicaCount 0) is modelled on what its Redis list trigger measures,
the length of the queue's list: tasks queued at 0 replicas scale the pool to N; the scale-down to 0
comes while every worker is busy; a backlog left behind scales it to 1 until it is drained, then to 0
(the cooldown period outlasts a task, so that worker is idle by then). Each replica is a pod of the
rendered Deployment, with its command, env and terminationGracePeriodSeconds; a scale-down deletes
the surplus pods at once, SIGTERM first, as the kubelet does. ``tracked_task`` records each start and
each completion in Redis, so every task's runs are counted, and attributed to a worker.

Shortened on the dev stack: ``longestTaskSeconds`` 120 → 10, so the grace period is 40 s. The
visibility timeout keeps its floor of 3600 s; as in test_scenario_shutdown, the messages of a worker
killed hard are aged in kombu's ``unacked_index`` by the visibility timeout instead of waiting.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    import redis as redis_py

    from tests.runtime.harness import Kubelet, Pod

OVERRIDES = {"longestTaskSeconds": 10}
POOL, QUEUE = "celery-io", "reports"
TASK = "sample_app.tasks.tracked_task"
# The lists sample_app.tasks writes (the test process cannot import the app: it reads the pod's env).
STARTED, COMPLETED = "sample_app:tracked_task:started", "sample_app:tracked_task:completed"
# KEDA's scale-up from 0 on a backlog of three tasks per replica: every child of the N workers busy,
# and a backlog left at the scale-down. Tasks long enough that both pods are up before the first end.
REPLICAS = 2
TASK_SECONDS = 4


def concurrency(pod_spec: dict[str, Any]) -> int:
    """The rendered worker's ``--concurrency``."""
    container = pod_spec["containers"][0]
    args = [*(container.get("command") or []), *(container.get("args") or [])]
    return int(args[args.index("--concurrency") + 1])


def backlog(redis: redis_py.Redis) -> int:
    """What KEDA's Redis list trigger measures: the length of the queue's list (kombu's key is its name)."""
    return int(redis.llen(QUEUE))


def entries(redis: redis_py.Redis, key: str) -> Counter[tuple[str, int]]:
    """(task id, worker pid) of each entry in ``tracked_task``'s started or completed list."""
    pairs = [(raw.decode() if isinstance(raw, bytes) else raw).split() for raw in redis.lrange(key, 0, -1)]
    return Counter((task, int(pid)) for task, pid in pairs)


def runs(redis: redis_py.Redis, key: str) -> Counter[str]:
    """How often each task id appears in ``tracked_task``'s started or completed list."""
    return Counter(task for task, _ in entries(redis, key).elements())


def running(redis: redis_py.Redis) -> Counter[tuple[str, int]]:
    """(task id, worker pid) of the runs that started and have not completed."""
    return entries(redis, STARTED) - entries(redis, COMPLETED)


def parked(redis: redis_py.Redis) -> set[str]:
    """Task ids of the messages in kombu's ``unacked`` hash: delivered to a worker, never acknowledged."""
    return {json.loads(raw)[0]["headers"]["id"] for raw in redis.hvals("unacked")}


def every_worker_busy(redis: redis_py.Redis, pods: list[Pod], slots: int) -> bool:
    """True while each pod's worker runs a task on each of its ``slots`` pool children."""
    per_worker = Counter(pid for _, pid in running(redis).elements())
    return all(pod.process is not None and per_worker[pod.process.pid] == slots for pod in pods)


def assert_exited_within_grace(pod: Pod, node: Kubelet) -> None:
    """The pod ended by its own warm shutdown, within the rendered terminationGracePeriodSeconds."""
    assert pod.grace_seconds == node.pod_spec(POOL)["terminationGracePeriodSeconds"]
    ended = pod.termination
    assert ended is not None and not ended.killed and ended.exit_code == 0, pod.describe() + pod.log()
    assert ended.seconds < pod.grace_seconds


def scale_up_busy(node: Kubelet, redis: redis_py.Redis) -> tuple[list[str], list[Pod]]:
    """Queue three tasks per replica at 0 replicas, scale to N; return the task ids and the pods, every worker busy."""
    slots = concurrency(node.pod_spec(POOL))
    client = celery_client(node.broker.url(), [QUEUE])
    ids = [client.send_task(TASK, args=(TASK_SECONDS,), queue=QUEUE).id for _ in range(3 * REPLICAS)]
    client.close()
    assert node.live_pods(POOL) == [] and backlog(redis) == len(ids)

    pods = node.scale(POOL, REPLICAS)
    busy = wait_until(lambda: len(running(redis)) == slots * REPLICAS and every_worker_busy(redis, pods, slots), 60)
    assert busy, "\n".join(p.describe() + p.log() for p in pods)
    # Prefetch 1 with acks_late: a busy worker reserves no more, so the rest stays in the queue. (With
    # acks early, each worker also takes and acks the next tasks, and the queue is empty here.)
    assert 0 < backlog(redis) < len(ids)
    return ids, pods


def drain_like_keda(node: Kubelet, redis: redis_py.Redis, done: Callable[[], bool]) -> None:
    """A backlog scales the pool from 0 to 1; once ``done`` (drained, the worker idle), back to 0."""
    assert node.live_pods(POOL) == [] and backlog(redis) > 0
    (pod,) = node.scale(POOL, 1)
    assert wait_until(done, timeout=60), pod.describe() + pod.log()
    assert backlog(redis) == 0
    assert node.scale(POOL, 0) == []
    assert_exited_within_grace(pod, node)


def test_scaling_to_zero_while_every_worker_is_busy_runs_every_queued_task_exactly_once(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    redis = node.broker.client()
    ids, pods = scale_up_busy(node, redis)
    in_flight = {task for task, _ in running(redis)}

    assert node.scale(POOL, 0) == []
    for pod in pods:
        assert_exited_within_grace(pod, node)
    # Warm shutdown: each task that had started completed once, nothing was left unacknowledged, and
    # the tasks no worker had taken still wait in the queue, for KEDA to see.
    started = runs(redis, STARTED)
    assert in_flight <= set(started) and runs(redis, COMPLETED) == started == Counter(set(started))
    assert parked(redis) == set()
    assert backlog(redis) == len(ids) - len(started)

    drain_like_keda(node, redis, lambda: sum(runs(redis, COMPLETED).values()) >= len(ids))
    assert runs(redis, STARTED) == runs(redis, COMPLETED) == Counter(ids)
    assert redis.hlen("unacked") == 0


def test_a_worker_killed_hard_during_scale_down_has_its_tasks_redelivered_and_every_other_task_runs_once(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", OVERRIDES)
    redis = node.broker.client()
    ids, (victim, survivor) = scale_up_busy(node, redis)
    assert victim.process is not None
    lost_with_victim = {task for task, pid in running(redis) if pid == victim.process.pid}

    with ThreadPoolExecutor(max_workers=1) as kube:
        scaling_down = kube.submit(node.scale, POOL, 0)
        # Mid-grace, the victim's node is lost (or its grace runs out): SIGKILL to every process,
        # while its tasks still run; the other pod goes on with its warm shutdown.
        assert wait_until(lambda: "Warm shutdown" in victim.log(), timeout=10), victim.log()
        victim.kill_container()
        assert scaling_down.result(timeout=survivor.grace_seconds + 10) == []
    assert victim.termination is not None and victim.termination.exit_code == -signal.SIGKILL
    assert_exited_within_grace(survivor, node)
    # Not lost: acks_late leaves the victim's messages parked, unacknowledged, in Redis. KEDA's list
    # trigger does not count them, and no worker restores them before the visibility timeout.
    assert parked(redis) == lost_with_victim
    taken = set(runs(redis, STARTED))
    assert runs(redis, COMPLETED) == Counter(taken - lost_with_victim)
    waiting = set(ids) - taken
    assert backlog(redis) == len(waiting) > 0

    drain_like_keda(node, redis, lambda: waiting <= set(runs(redis, COMPLETED)))
    assert parked(redis) == lost_with_victim

    # An hour on, the visibility timeout has passed (the broker's clock is fast-forwarded). The pool is
    # at 0 and the queue empty, so only the next scale-up, for the next task, restores the parked
    # messages: a worker sweeps the visibility index when it starts.
    visibility = int(survivor.main.env["CELERY_VISIBILITY_TIMEOUT_SECONDS"])
    for tag, score in redis.zrange("unacked_index", 0, -1, withscores=True):
        redis.zadd("unacked_index", {tag: score - visibility - 1})
    client = celery_client(node.broker.url(), [QUEUE])
    ids.append(client.send_task(TASK, args=(TASK_SECONDS,), queue=QUEUE).id)
    client.close()
    drain_like_keda(node, redis, lambda: set(ids) <= set(runs(redis, COMPLETED)))

    # At least once for the victim's tasks, started again after the kill; exactly once for every other.
    started, completed = runs(redis, STARTED), runs(redis, COMPLETED)
    assert started == Counter(ids) + Counter(lost_with_victim), started
    assert all(completed[task] >= 1 for task in lost_with_victim), completed
    assert {task: n for task, n in completed.items() if task not in lost_with_victim} == {
        task: 1 for task in ids if task not in lost_with_victim
    }
    assert redis.hlen("unacked") == 0
