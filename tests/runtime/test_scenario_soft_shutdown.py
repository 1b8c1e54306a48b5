"""Issue 20, item 5: a pool's shutdown mode, ``finish`` or ``requeue``, as a rollout and a scale-down meet it.

Each pool runs with the command, env and terminationGracePeriodSeconds that the builders render for
its mode (the harness reads them from the render; nothing is written by hand here): ``requeue`` adds
``REMAP_SIGTERM=SIGQUIT`` and the soft shutdown timeout the hooks module gives Celery. The pod's end
is the kubelet's: SIGTERM to PID 1, SIGKILL only after the grace period. ``tracked_task`` records each
start and completion with the worker's pid, so every run of a task is counted and attributed.

The rolled task lasts 300 s (``longestTaskSeconds`` 300: ``finish`` waits up to 330 s), so each of the
two roll tests takes about 5 minutes; they are independent and run side by side in the parallel tier.
The times from SIGTERM to exit are measured in ``make bench`` (benchmarks/run.py), not asserted here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    import redis as redis_py

    from tests.runtime.harness import Kubelet

POOL, QUEUE = "celery-io", "reports"
TASK = "sample_app.tasks.tracked_task"
STARTED, COMPLETED = "sample_app:tracked_task:started", "sample_app:tracked_task:completed"
ROLLED_TASK_SECONDS = 300
SOFT_SHUTDOWN_SECONDS = 5


def overrides(shutdown: str, longest: int = ROLLED_TASK_SECONDS, replicas: int = 1) -> dict[str, Any]:
    """The dev stack with its io pool in ``shutdown`` mode (dev's pools otherwise)."""
    io: dict[str, Any] = {"name": "io", "queues": ["email", "reports", "media", "webhooks"], "replicas": replicas}
    io["shutdown"] = shutdown
    if shutdown == "requeue":
        io["softShutdownSeconds"] = SOFT_SHUTDOWN_SECONDS
    main = {"name": "main", "queues": ["default", "high", "low", "maintenance"], "replicas": 1}
    return {"longestTaskSeconds": longest, "pools": [main, io]}


def entries(redis: redis_py.Redis, key: str) -> Counter[tuple[str, int]]:
    """(task id, worker pid) of each entry in ``tracked_task``'s started or completed list."""
    pairs = [(raw.decode() if isinstance(raw, bytes) else raw).split() for raw in redis.lrange(key, 0, -1)]
    return Counter((task, int(pid)) for task, pid in pairs)


def runs(redis: redis_py.Redis, key: str) -> Counter[str]:
    """How often each task id appears in the started or completed list."""
    return Counter(task for task, _ in entries(redis, key).elements())


def main_env(node: Kubelet) -> dict[str, str]:
    """The rendered worker container's literal env."""
    return {e["name"]: e["value"] for e in node.pod_spec(POOL)["containers"][0]["env"] if "value" in e}


def roll(node: Kubelet) -> tuple[redis_py.Redis, int, Any]:
    """Start the pool's pod, run one long tracked task on it and SIGTERM the pod mid-task, as a rollout does."""
    redis = node.broker.client()
    (pod,) = node.scale_up(POOL)
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe()
    client = celery_client(node.broker.url(), [QUEUE])
    result = client.send_task(TASK, args=(ROLLED_TASK_SECONDS,), queue=QUEUE)
    assert wait_until(lambda: runs(redis, STARTED)[result.id] == 1, timeout=30), pod.describe() + pod.log()
    assert pod.process is not None
    old_pid: int = pod.process.pid
    ended = pod.delete()
    assert not ended.killed, pod.describe() + pod.log()
    print(f"shutdown seconds: {ended.seconds:.1f} (grace {pod.grace_seconds}, exit code {ended.exit_code})")
    return redis, old_pid, (pod, ended, result, client)


def test_requeue_rolls_a_pod_mid_task_by_putting_the_task_back_on_its_queue_for_the_next_pod(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", overrides("requeue"))
    env = main_env(node)
    assert env["REMAP_SIGTERM"] == "SIGQUIT" and env["CELERY_PLATFORM_SOFT_SHUTDOWN_SECONDS"] == "5"
    assert node.pod_spec(POOL)["terminationGracePeriodSeconds"] == SOFT_SHUTDOWN_SECONDS + 30
    redis, old_pid, (pod, ended, result, client) = roll(node)

    # The old pod left before its task could finish: nothing completed, the message is back on its
    # queue (restored by the cold shutdown, not by the visibility timeout) and nothing is parked.
    log = pod.log()
    assert ended.exit_code == 0, log
    assert runs(redis, COMPLETED) == Counter(), log
    assert redis.llen(QUEUE) == 1 and redis.hlen("unacked") == 0, log
    # Celery's soft then cold path, not the warm shutdown; kombu restores at the connection's close.
    assert "Initiating Soft Shutdown" in log and "Cold shutdown" in log, log
    assert "Restoring 1 unacknowledged message(s)" in log, log

    # The rollout's new pod takes it and runs it to completion, exactly once more.
    (fresh,) = node.scale_up(POOL)
    assert wait_until(lambda: result.state == "SUCCESS", timeout=ROLLED_TASK_SECONDS + 90), fresh.describe()
    assert result.get(timeout=1) == ROLLED_TASK_SECONDS
    assert fresh.process is not None
    assert entries(redis, STARTED) == Counter({(result.id, old_pid): 1, (result.id, fresh.process.pid): 1})
    assert entries(redis, COMPLETED) == Counter({(result.id, fresh.process.pid): 1})
    assert wait_until(lambda: redis.hlen("unacked") == 0 and redis.llen(QUEUE) == 0, timeout=10)
    client.close()


def test_finish_rolls_a_pod_mid_task_only_after_the_task_completed_on_it(kubelet: Callable[..., Kubelet]) -> None:
    node = kubelet("dev", overrides("finish"))
    env = main_env(node)
    assert "REMAP_SIGTERM" not in env and "CELERY_PLATFORM_SOFT_SHUTDOWN_SECONDS" not in env
    assert node.pod_spec(POOL)["terminationGracePeriodSeconds"] == ROLLED_TASK_SECONDS + 30
    redis, old_pid, (pod, ended, result, client) = roll(node)

    # Warm shutdown: the pod exited cleanly only once its task had completed, on that pod, once.
    assert ended.exit_code == 0, pod.log()
    assert entries(redis, STARTED) == entries(redis, COMPLETED) == Counter({(result.id, old_pid): 1})
    assert result.get(timeout=5) == ROLLED_TASK_SECONDS
    assert redis.llen(QUEUE) == 0 and redis.hlen("unacked") == 0
    client.close()


# The scale-down: long enough that every worker is busy when KEDA removes replicas.
KEDA_TASK_SECONDS = 8
KEDA_REPLICAS = 3


def test_scaling_down_a_busy_requeue_pool_loses_no_task_and_runs_each_to_completion_once(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev", overrides("requeue", longest=60, replicas=KEDA_REPLICAS))
    redis = node.broker.client()
    client = celery_client(node.broker.url(), [QUEUE])
    ids = [client.send_task(TASK, args=(KEDA_TASK_SECONDS,), queue=QUEUE).id for _ in range(4 * KEDA_REPLICAS)]
    pods = node.scale(POOL, KEDA_REPLICAS)
    slots = 2 * KEDA_REPLICAS  # dev's concurrency 2

    def running() -> Counter[tuple[str, int]]:
        return entries(redis, STARTED) - entries(redis, COMPLETED)

    assert wait_until(lambda: len(running()) == slots, timeout=60), "\n".join(p.describe() for p in pods)
    # KEDA scales to 1 while every worker is busy: the surplus pods get SIGTERM at once.
    survivor, *removed = pods
    removed_pids = {pod.process.pid for pod in removed if pod.process is not None}
    assert len(removed_pids) == len(removed)
    assert node.scale(POOL, 1) == [survivor]
    for pod in removed:
        assert pod.termination is not None and not pod.termination.killed, pod.describe() + pod.log()
    # Tasks the removed pods started and did not finish within the soft shutdown: requeued, not lost.
    unfinished = entries(redis, STARTED) - entries(redis, COMPLETED)
    cut_short = {task for task, pid in unfinished if pid in removed_pids}
    assert cut_short, "the removed pods were running nothing"

    # Every task completes exactly once; the ones the removed pods cut short ran again, on the survivor.
    assert wait_until(lambda: set(runs(redis, COMPLETED)) == set(ids), timeout=180), survivor.describe()
    assert runs(redis, COMPLETED) == Counter(ids), runs(redis, COMPLETED)
    completed_by = {task: pid for task, pid in entries(redis, COMPLETED)}
    assert survivor.process is not None
    assert {completed_by[task] for task in cut_short} == {survivor.process.pid}
    assert wait_until(lambda: redis.hlen("unacked") == 0 and redis.llen(QUEUE) == 0, timeout=10)
    print(f"tasks sent {len(ids)}, completed {sum(runs(redis, COMPLETED).values())}, cut short {len(cut_short)}")
    client.close()
