"""``make bench``: ratios measured side by side in one run, printed as a table.

1. Probe cost: our rendered liveness probe against ``celery inspect ping -d <node>``, on the same
   prod main worker with every child busy. CPU seconds are the probes' own (children's rusage).
2. Cold start to ready, Redis starting 10 s late: our rendered prod worker (one replica) against the
   report's setup (its flags, its ``/proc/1/cmdline`` probes with its timings, no broker wait).
3. Shutdown modes (``benchmarks/shutdown.py``): seconds from SIGTERM to exit of a pool's pod that runs
   a 300 s task, ``requeue`` (soft shutdown 5 s) against ``finish``.
4. Program cost: render time per object of dev, prod and synthetic stacks of 1, 64 and 256 pools,
   in-process, and the cost of an added pool object at each step; linear means the same at every size.
5. Sentinel failover under load: the primary SIGKILLed while tasks flow to the rendered prod worker,
   beat and exporter; promotion time, first task run after the kill, and the exact task counts
   (acknowledged, refused, completed, lost against the min-replicas-max-lag bound). The broker is our
   own rendered data-node and Sentinel pods (tests/runtime/harness/sentinel.py).
6. KEDA through Sentinel (``--only keda-failover``): seconds from the primary's SIGKILL to the first
   reading of KEDA's redis-sentinel scaler (keda-backlog) that equals the backlog kombu queued.
7. Broker roll-out: every data node replaced in StatefulSet order (the master last) while tasks flow to
   the rendered main worker, with the data node's preStop hook against the same pods without it:
   seconds of refused sends, worker restarts, and the exact task counts.

The pods run run through the runtime tier's harness (``tests/runtime/harness/``), so the probes run
with the rendered (or the report's) periods, delays, timeouts and thresholds. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.shutdown import shutdown_modes
from benchmarks.synthetic import write_synthetic_project
from tests.runtime import harness

PASSWORD = "bench-Pa55word"
ROOT = Path(__file__).resolve().parents[1]
QUEUES = ["default", "high", "low", "email", "reports", "media", "webhooks", "maintenance"]
POOLS = (1, 64, 256)


class Redis:
    """A throw-away redis-server on a free port."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
        argv += ["--dir", str(self.workdir), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def kubelet(stack: str, redis: Redis, workdir: Path) -> Iterator[harness.Kubelet]:
    manifests = harness.Manifests(harness.render(stack))
    host, port = harness.broker_fqdn(manifests)
    cluster = harness.Cluster(
        manifests=manifests,
        secret_values=harness.test_secret_values(PASSWORD, host, port),
        service_addresses={"redis": ("127.0.0.1", redis.port)},
    )
    node = harness.Kubelet(manifests, cluster, workdir, broker=redis)
    try:
        yield node
    finally:
        node.shutdown()


def measured(action: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds and children's CPU seconds (user + system) of action, and its result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = action()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


# ---------------------------------------------------------------------------------------------------


def probe_cost(workdir: Path, rounds: int) -> list[tuple[str, str, str, str]]:
    redis = Redis(workdir / "redis-probe")
    redis.start()
    try:
        with kubelet("prod", redis, workdir / "probe") as node:
            pod = node.create_pod("celery-main")
            if not harness.wait_until(lambda: pod.ready, 90):
                raise SystemExit(pod.describe())
            args = pod.main.argv
            concurrency = int(args[args.index("--concurrency") + 1])
            client = harness.celery_client(redis.url(), ["reports"])
            for _ in range(concurrency):
                client.send_task("sample_app.tasks.long_task", args=(600,), queue="reports")
            time.sleep(3)  # every child busy
            nodename = args[args.index("-n") + 1].replace("%h", pod.name)
            ping_argv = ["celery", "-A", "sample_app", "inspect", "ping", "-d", nodename]
            ours, theirs, ready = [], [], []
            timeout = float(pod.main.probes["liveness"]["timeoutSeconds"])
            for _ in range(rounds):
                # Readiness too: since issue 12 it checks the ready file and the heartbeat's age.
                ready.append(
                    measured(
                        lambda: harness.run_exec_probe(
                            pod.probe_argv("readiness"), pod.main.env, harness.SAMPLE_APP_DIR, timeout
                        )
                    )
                )
                ours.append(
                    measured(
                        lambda: harness.run_exec_probe(
                            pod.probe_argv("liveness"), pod.main.env, harness.SAMPLE_APP_DIR, timeout
                        )
                    )
                )
                theirs.append(
                    measured(lambda: harness.run_exec_probe(ping_argv, pod.main.env, harness.SAMPLE_APP_DIR, 30))
                )
            reply_keys = len(redis_client(redis).keys("*reply.celery.pidbox*"))
            client.close()
    finally:
        redis.stop()
    o_wall, o_cpu = statistics.median(w for w, _, _ in ours), statistics.median(c for _, c, _ in ours)
    t_wall, t_cpu = statistics.median(w for w, _, _ in theirs), statistics.median(c for _, c, _ in theirs)
    r_wall, r_cpu = statistics.median(w for w, _, _ in ready), statistics.median(c for _, c, _ in ready)
    r_ok = sum(r[0] == 0 for _, _, r in ready)
    o_ok = sum(r[0] == 0 for _, _, r in ours)
    t_ok = sum(r[0] == 0 for _, _, r in theirs)
    return [
        ("probe: wall s (median)", f"{o_wall:.3f}", f"{t_wall:.3f}", f"{t_wall / o_wall:.0f}x"),
        ("probe: CPU s (median)", f"{o_cpu:.3f}", f"{t_cpu:.3f}", f"{t_cpu / max(o_cpu, 1e-3):.0f}x"),
        ("probe: passed / rounds", f"{o_ok}/{rounds}", f"{t_ok}/{rounds}", "-"),
        ("probe: pidbox reply keys left in Redis", "0", str(reply_keys), "-"),
        ("readiness probe: wall s / CPU s (median)", f"{r_wall:.3f} / {r_cpu:.3f}", "-", "-"),
        ("readiness probe: passed / rounds (busy)", f"{r_ok}/{rounds}", "-", "-"),
    ]


def redis_client(redis: Redis) -> Any:
    import redis as redis_py

    return redis_py.Redis(host="127.0.0.1", port=redis.port, password=PASSWORD)


def report_pod_spec(ours: dict[str, Any]) -> dict[str, Any]:
    """The report's worker: its flags and /proc/1/cmdline probes, no init container, no hooks.

    The env keeps our Secret-backed values (the report fixed its secrets and broker host by hand) and
    drops the hooks' variables; Kubernetes defaults fill what the report does not state
    (timeoutSeconds 1, failureThreshold 3 for liveness and readiness).
    """
    container = dict(ours["containers"][0])
    queues = container["args"][container["args"].index("-Q") + 1]
    concurrency = container["args"][container["args"].index("--concurrency") + 1]
    grep = {"exec": {"command": ["sh", "-c", "grep -q celery /proc/1/cmdline"]}}
    container.update(
        command=["celery"],
        args=[
            *["-A", "sample_app", "worker", "--loglevel=info", f"--concurrency={concurrency}", "-Q", queues],
            *["--without-gossip", "--without-mingle", "--without-heartbeat"],
        ],
        env=[e for e in container["env"] if not e["name"].startswith("CELERY_PLATFORM_") and e["name"] != "PYTHONPATH"],
        startupProbe={**grep, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 30},
        livenessProbe={**grep, "periodSeconds": 30},
        readinessProbe={**grep, "periodSeconds": 15},
        volumeMounts=[],
    )
    return {**ours, "containers": [container], "initContainers": [], "volumes": []}


def cold_start(workdir: Path, redis_late_seconds: float) -> list[tuple[str, str, str, str]]:
    redis = Redis(workdir / "redis-cold")
    rows: dict[str, dict[str, float | int | str]] = {}
    with kubelet("prod", redis, workdir / "cold") as node:
        ours = harness.Pod("ours-0", node.pod_spec("celery-main"), node.cluster, workdir / "cold" / "ours-0")
        theirs = harness.Pod(
            "report-0", report_pod_spec(node.pod_spec("celery-main")), node.cluster, workdir / "cold" / "report-0"
        )
        node.pods += [ours, theirs]
        t0 = time.monotonic()
        ours.start()
        theirs.start()
        time.sleep(redis_late_seconds)
        redis.start()
        try:
            harness.wait_until(lambda: ours.ready and theirs.ready, 120)
            harness.wait_until(lambda: all(" ready." in p.log() for p in (ours, theirs)), 30)
            for label, pod in (("ours", ours), ("report", theirs)):
                ready = pod.ready_since - t0 if pod.ready_since else float("nan")
                rows[label] = {"ready": ready, "restarts": pod.restarts, "consuming": _consuming_at(pod) - t0}
        finally:
            node.shutdown()
            redis.stop()
    o, r = rows["ours"], rows["report"]
    return [
        (
            "cold start: s to Ready (Redis +10 s)",
            f"{o['ready']:.1f}",
            f"{r['ready']:.1f}",
            f"{r['ready'] / o['ready']:.2f}x",
        ),  # type: ignore[operator]
        ("cold start: s to consuming", f"{o['consuming']:.1f}", f"{r['consuming']:.1f}", "-"),
        (
            "cold start: Ready before broker up?",
            _yes(o["ready"], redis_late_seconds),
            _yes(r["ready"], redis_late_seconds),
            "-",
        ),
        ("cold start: restarts", str(o["restarts"]), str(r["restarts"]), "-"),
    ]


def _yes(ready: Any, late: float) -> str:
    return "yes" if float(ready) < late else "no"


def _consuming_at(pod: harness.Pod) -> float:
    # The worker's own "<node> ready." line: connected to the broker and consuming. Its mtime is late
    # by at most the log flush; the main container's log file is the pod's last log.
    for path in reversed(pod.logs):
        text = path.read_text(errors="replace")
        if " ready." in text:
            line = next(x for x in text.splitlines() if " ready." in x)
            stamp = line.split("]", 1)[0].strip("[").split(": ", 1)[0]
            wall = (
                time.mktime(time.strptime(stamp.split(",")[0], "%Y-%m-%d %H:%M:%S")) + int(stamp.split(",")[1]) / 1000
            )
            return time.monotonic() - (time.time() - wall)
    return float("nan")


# ---------------------------------------------------------------------------------------------------


def program_cost(workdir: Path, rounds: int) -> list[tuple[str, str, str, str]]:
    """Render time per object of dev, prod and synthetic stacks of 1, 64 and 256 pools (best of ``rounds``).

    The ratio column compares each row's cost per object with the 1-pool stack's: 1.00x is linear.
    That ratio also moves with the mix of objects: what a pool adds (a Deployment and a PodDisruptionBudget)
    costs more than the average object of the fixed part. So the last row compares like with like, the
    cost of an added pool object from 64 to 256 pools against that from 1 to 64: 1.00x is linear.
    CPU seconds of this process, not wall: on a shared machine the wall clock measures the neighbours.
    Rounds go round the stacks in turn, so that a busy spell on the machine hits every stack alike.
    """
    from celery_platform.config import stack as stack_config
    from celery_platform.render import render_documents

    cases = [("dev", "dev", ROOT), ("prod", "prod", ROOT)]
    cases += [(f"{n} pools", write_synthetic_project(workdir / "synthetic", n), workdir / "synthetic") for n in POOLS]
    best = dict.fromkeys((label for label, _, _ in cases), float("inf"))
    shape: dict[str, tuple[int, int]] = {}
    # A stack file may hold at most MAX_POOLS pools (more is a typo or a generator gone wrong); the
    # bench measures the program past that limit, in this process only.
    with mock.patch.object(stack_config, "MAX_POOLS", max(stack_config.MAX_POOLS, *POOLS)):
        for _ in range(rounds):
            for label, stack_name, root in cases:
                gc.collect()
                t0 = time.process_time()
                docs = render_documents(stack_name, root)
                best[label] = min(best[label], time.process_time() - t0)
                shape[label] = (len(docs), sum(d["kind"] == "Deployment" for d in docs))
    base = best[f"{POOLS[0]} pools"] / shape[f"{POOLS[0]} pools"][0]
    rows = []
    for label, seconds in best.items():
        objects, pools = shape[label]
        per_object = seconds / objects
        rows.append(
            (
                f"render {label} ({pools} pools, {objects} objects): CPU s",
                f"{seconds:.2f}",
                f"{per_object * 1000:.1f} ms/object",
                f"{per_object / base:.2f}x 1 pool",
            )
        )
    small, middle, large = (f"{n} pools" for n in POOLS)

    def added(a: str, b: str) -> float:
        return (best[b] - best[a]) / (shape[b][0] - shape[a][0])

    rows.append(
        (
            f"render: CPU s per added pool object, {POOLS[1]}->{POOLS[2]} pools",
            f"{added(middle, large) * 1000:.1f} ms/object",
            f"{added(small, middle) * 1000:.1f} ms/object ({POOLS[0]}->{POOLS[1]})",
            f"{added(middle, large) / added(small, middle):.2f}x",
        )
    )
    return rows


def sentinel_failover(workdir: Path, rounds: int) -> list[tuple[str, str, str, str]]:
    """SIGKILL the Sentinel primary under load, ``rounds`` times: recovery times and exact counts.

    The runtime test's harness (tests/runtime/harness/failover.py) on a fresh Sentinel deployment
    per round. No baseline runs beside it: a standalone Redis has no failover, its pods wait for
    the node's replacement (minutes on cloud block storage).
    """
    from tests.runtime.harness.failover import failover_under_load
    from tests.runtime.harness.sentinel import SentinelCluster

    results = []
    for index in range(rounds):
        cluster = SentinelCluster(workdir / f"sentinel-{index}", PASSWORD, "bench-S3ntinel").start()
        try:
            results.append(failover_under_load(workdir / f"failover-{index}", cluster))
        finally:
            cluster.shutdown()

    def spread(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    first = [r.first_consumed_seconds for r in results if r.first_consumed_seconds is not None]
    total = {
        "acknowledged": sum(r.acknowledged for r in results),
        "refused": sum(r.refused for r in results),
        "completed": sum(r.completed for r in results),
        "lost": sum(len(r.lost) for r in results),
        "bound": sum(r.acknowledged_in_bound_window for r in results),
        "late": sum(len(r.redelivered_after_visibility_timeout) for r in results),
        "duplicated": sum(len(r.duplicated) for r in results),
    }
    restarts = sum(r.restarts["celery-main"] for r in results)
    return [
        ("failover: Sentinel promotes a replica", spread([r.promotion_seconds for r in results]), "-", "-"),
        ("failover: first task run after SIGKILL", spread(first) if first else "never", "-", "-"),
        (
            f"failover: tasks over {rounds} rounds",
            f"sent {total['acknowledged'] + total['refused']}: acknowledged {total['acknowledged']}, "
            f"refused {total['refused']}, completed {total['completed']}",
            "-",
            "-",
        ),
        (
            "failover: acknowledged and lost",
            f"{total['lost']} (bound: {total['bound']} acknowledged in the min-replicas-max-lag window)",
            "-",
            "-",
        ),
        (
            "failover: in flight, run after visibility timeout",
            f"{total['late']}; run twice: {total['duplicated']}",
            "-",
            "-",
        ),
        ("failover: worker container restarts", f"{restarts} in {rounds} rounds", "-", "-"),
    ]


def keda_sentinel_failover(workdir: Path, rounds: int) -> list[tuple[str, str, str, str]]:
    """KEDA's redis-sentinel scaler after a primary SIGKILL, ``rounds`` times: seconds to its first correct read.

    The runtime test's harness (tests/runtime/harness/keda_sentinel.py) on a fresh Sentinel deployment per
    round: the backlog queued by kombu, replicated, the primary killed, keda-backlog run until it reads the
    same backlog on the promoted master. The harness' Sentinels detect a down master after 1 s
    (``down-after-milliseconds``); KEDA's polling interval in a cluster comes on top.
    """
    from tests.keda_tools import EXPECTED
    from tests.runtime.harness.keda_sentinel import (
        enqueue,
        producer,
        read_after_kill,
        replicated,
        scaled_object,
        sentinel_spec,
    )
    from tests.runtime.harness.sentinel import SentinelCluster

    seconds: list[float] = []
    never = 0
    for index in range(rounds):
        cluster = SentinelCluster(
            workdir / f"keda-sentinel-{index}", PASSWORD, "bench-S3ntinel", spec=sentinel_spec()
        ).start()
        try:
            app = producer(cluster)
            enqueue(app)
            app.close()
            if replicated(cluster) != cluster.replicas:
                raise RuntimeError("the replicas did not acknowledge the backlog before the kill")
            after = read_after_kill(scaled_object(), cluster, EXPECTED)
        finally:
            cluster.shutdown()
        if after.seconds is None:
            never += 1
        else:
            seconds.append(after.seconds)
    took = (
        f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f})"
        if seconds
        else "never"
    )
    return [("KEDA redis-sentinel: SIGKILL to first correct read", took, f"{never} of {rounds} never read", "-")]


def broker_rollout(workdir: Path, rounds: int) -> list[tuple[str, str, str, str]]:
    """Roll the data nodes under load ``rounds`` times with the preStop hook and as many without, in turn.

    The runtime test's harness (tests/runtime/harness/rollout.py) on a fresh deployment per round, with
    the SentinelSpec's production defaults and the rendered args as they are.
    """
    from celery_platform.config.sentinel import SentinelSpec
    from tests.runtime.harness.rollout import RolloutResult
    from tests.runtime.harness.rollout import broker_rollout as roll
    from tests.runtime.harness.sentinel import AS_RENDERED_ARGS, SentinelCluster

    results: dict[bool, list[RolloutResult]] = {True: [], False: []}
    for index in range(rounds):
        for hook in (True, False):
            where = workdir / f"rollout-{index}-{'hook' if hook else 'none'}"
            cluster = SentinelCluster(
                where / "broker",
                PASSWORD,
                "bench-S3ntinel",
                spec=SentinelSpec(),
                node_args=AS_RENDERED_ARGS,
                pre_stop=hook,
            ).start()
            try:
                results[hook].append(roll(where / "platform", cluster))
            finally:
                cluster.shutdown()

    def total(hook: bool, of: Callable[[RolloutResult], float]) -> float:
        return sum(of(r) for r in results[hook])

    def pair(label: str, of: Callable[[RolloutResult], float], fmt: str = "{:.0f}") -> tuple[str, str, str, str]:
        ours, theirs = total(True, of), total(False, of)
        ratio = f"{theirs / ours:.1f}x fewer" if ours else ("-" if not theirs else "none with the hook")
        return (f"roll-out ({rounds} rounds): {label}", fmt.format(ours), fmt.format(theirs), ratio)

    def counts(hook: bool) -> str:
        acknowledged = total(hook, lambda r: r.acknowledged)
        return (
            f"sent {total(hook, lambda r: r.acknowledged + r.refused):.0f}: acknowledged {acknowledged:.0f}, "
            f"completed {total(hook, lambda r: r.completed):.0f}, lost {total(hook, lambda r: len(r.lost)):.0f}"
        )

    return [
        pair("seconds of refused sends", lambda r: r.refused_seconds, "{:.2f}"),
        pair("refused sends", lambda r: r.refused),
        pair("refused with NOREPLICAS", lambda r: sum(n for k, n in r.refusals.items() if "NOREPLICAS" in k)),
        pair("worker container restarts", lambda r: r.worker_restarts),
        (
            f"roll-out ({rounds} rounds): longest single send, s",
            f"{max(r.longest_send_seconds for r in results[True]):.2f}",
            f"{max(r.longest_send_seconds for r in results[False]):.2f}",
            "-",
        ),
        (f"roll-out ({rounds} rounds): tasks", counts(True), counts(False), "-"),
        pair("run twice", lambda r: len(r.duplicated)),
        (
            "roll-out: master's preStop hook, s (median)",
            f"{statistics.median(r.hook_seconds['node-0'] for r in results[True]):.2f}",
            "-",
            "-",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--probe-rounds", type=int, default=5)
    parser.add_argument("--render-rounds", type=int, default=3)
    parser.add_argument("--redis-late-seconds", type=float, default=10)
    parser.add_argument("--failover-rounds", type=int, default=3)
    parser.add_argument("--rollout-rounds", type=int, default=2)
    parser.add_argument("--shutdown-task-seconds", type=int, default=300)
    choices = ["probe", "cold", "shutdown", "program", "failover", "keda-failover", "rollout"]
    parser.add_argument("--only", choices=choices, action="append")
    options = parser.parse_args(argv)
    only = set(options.only or choices)
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        workdir = Path(tmp)
        if "probe" in only:
            rows += probe_cost(workdir, options.probe_rounds)
        if "cold" in only:
            rows += cold_start(workdir, options.redis_late_seconds)
        if "shutdown" in only:
            rows += shutdown_modes(workdir, options.shutdown_task_seconds)
        if "program" in only:
            rows += program_cost(workdir, options.render_rounds)
        if "failover" in only:
            rows += sentinel_failover(workdir, options.failover_rounds)
        if "keda-failover" in only:
            rows += keda_sentinel_failover(workdir, options.failover_rounds)
        if "rollout" in only:
            rows += broker_rollout(workdir, options.rollout_rounds)
    header = ("measure", "ours", "baseline (ping / report / per object / no preStop hook)", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "+".join("-" * (w + 2) for w in widths)
    print(line)
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
