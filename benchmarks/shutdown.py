"""``make bench``, shutdown modes: seconds from SIGTERM to exit of a worker pod that runs one long task.

The dev stack's io pool, rendered in each mode exactly as tests/runtime/test_scenario_soft_shutdown.py
renders it (``longestTaskSeconds`` 300, ``softShutdownSeconds`` 5), runs through the runtime tier's
harness: the kubelet's SIGTERM, then SIGKILL after the rendered terminationGracePeriodSeconds.
"""

from __future__ import annotations

from pathlib import Path

from tests.runtime import harness
from tests.runtime.test_scenario_soft_shutdown import POOL, QUEUE, TASK, overrides


def time_to_exit(workdir: Path, redis: object, mode: str, task_seconds: int) -> tuple[float, int, bool]:
    """Seconds from SIGTERM to exit, the grace period, and whether SIGKILL was needed, for one mode."""
    from benchmarks.run import PASSWORD

    manifests = harness.Manifests(harness.render("dev", overrides(mode)))
    host, port = harness.broker_fqdn(manifests)
    cluster = harness.Cluster(
        manifests=manifests,
        secret_values=harness.test_secret_values(PASSWORD, host, port),
        service_addresses={"redis": ("127.0.0.1", redis.port)},  # type: ignore[attr-defined]
    )
    node = harness.Kubelet(manifests, cluster, workdir / mode, broker=redis)
    try:
        (pod,) = node.scale_up(POOL)
        if not harness.wait_until(lambda: pod.ready, 60):
            raise SystemExit(pod.describe())
        client = harness.celery_client(redis.url(), [QUEUE])  # type: ignore[attr-defined]
        result = client.send_task(TASK, args=(task_seconds,), queue=QUEUE)
        if not harness.wait_until(lambda: result.state == "STARTED", 30):
            raise SystemExit(pod.describe() + pod.log())
        ended = pod.delete()
        client.close()
        return ended.seconds, pod.grace_seconds, ended.killed
    finally:
        node.shutdown()


def shutdown_modes(workdir: Path, task_seconds: int) -> list[tuple[str, str, str, str]]:
    """Rows: requeue against finish, each on its own fresh Redis."""
    from benchmarks.run import Redis

    seconds: dict[str, tuple[float, int, bool]] = {}
    for mode in ("requeue", "finish"):
        redis = Redis(workdir / f"redis-{mode}")
        redis.start()
        try:
            seconds[mode] = time_to_exit(workdir, redis, mode, task_seconds)
        finally:
            redis.stop()
    (rq, rq_grace, rq_killed), (fin, fin_grace, fin_killed) = seconds["requeue"], seconds["finish"]
    return [
        (f"shutdown: s SIGTERM to exit, {task_seconds} s task", f"{rq:.1f}", f"{fin:.1f} (finish)", f"{fin / rq:.1f}x"),
        ("shutdown: grace period s", str(rq_grace), str(fin_grace), "-"),
        ("shutdown: SIGKILL needed?", "yes" if rq_killed else "no", "yes" if fin_killed else "no", "-"),
    ]
