"""A broker roll-out under load: every data node replaced in StatefulSet order while tasks flow to a worker pool.

Shared by the runtime test (which asserts on what happened) and ``make bench`` (which reports it, with
and without the data node's preStop hook, side by side). A StatefulSet's RollingUpdate replaces the pods
from the highest ordinal down, each once the one before is Ready: the replicas first, the master (node 0
at first start) last. Each pod is deleted as the kubelet deletes it (the preStop hook, then SIGTERM,
within the rendered grace period) and its replacement starts with the same volume and a new emptyDir;
the next one waits until the readiness probe passes.

The worker is the prod stack's main pool, rendered, through the tiny kubelet (a restart is the kubelet's:
a container exit or a probe). What is counted is what ``harness.failover`` counts (acknowledged, refused,
completed, lost, run twice), plus the seconds during which sends were refused and the longest send.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.runtime.harness.failover import (
    JOURNAL,
    JournalWatch,
    Sends,
    client_app,
    drain_and_sweep,
    free_port,
    produce,
    sentinel_kubelet,
)
from tests.runtime.harness.pod import Pod
from tests.runtime.harness.scenario import wait_until
from tests.runtime.harness.sentinel import SentinelCluster
from tests.runtime.harness.sentinel_pods import ScriptPod, wait_for

WORKER = "celery-main"


@dataclass
class RolloutResult:
    """Everything measured in one roll-out of the data nodes."""

    hook: bool
    """Whether the data nodes ran their preStop hook."""
    acknowledged: int
    refused: int
    refusals: dict[str, int]
    """Refused sends by their error (its first 90 characters, digits as N)."""
    completed: int
    lost: list[str]
    duplicated: list[str]
    redelivered_after_visibility_timeout: list[str]
    refused_seconds: float
    longest_refusal_seconds: float
    longest_send_seconds: float
    worker_restarts: int
    worker_exits: list[str]
    """How each worker container ended before its restart (exit code, probe kill)."""
    master_before: str
    master_after: str
    started_as: dict[str, str]
    """Each data node's start decision after its replacement (``starting as master (...)`` etc.)."""
    pre_stop: dict[str, str]
    """What each data node's preStop hook printed last ('' when none ran)."""
    hook_seconds: dict[str, float]
    roll_seconds: float
    worker_ready_after: bool
    """The worker pod is Ready again after the roll-out (and a restart's back-off, if any)."""
    pods: list[Pod] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        return (
            f"{'with' if self.hook else 'without'} the preStop hook: master {self.master_before} -> "
            f"{self.master_after}; sent {self.acknowledged + self.refused} (acknowledged {self.acknowledged}, "
            f"refused {self.refused} {self.refusals}), completed {self.completed}, lost {len(self.lost)}, "
            f"run twice {len(self.duplicated)} ({len(self.redelivered_after_visibility_timeout)} only after the "
            f"visibility timeout); sends refused for {self.refused_seconds:.2f} s (longest spell "
            f"{self.longest_refusal_seconds:.2f} s), longest send {self.longest_send_seconds:.2f} s; worker "
            f"restarts {self.worker_restarts} {self.worker_exits}; hooks {self.hook_seconds}; "
            f"roll-out {self.roll_seconds:.1f} s"
        )

    def describe(self) -> str:
        return "\n".join(p.describe() + "\n" + p.log()[-6000:] for p in self.pods)


def replace_pod(cluster: SentinelCluster, pod: ScriptPod, ready_timeout: float = 120) -> float:
    """Delete ``pod`` as the kubelet does, start its replacement on the same volume, wait until it is Ready."""
    hook_seconds = pod.terminate()
    pod.start(new_pod=True)
    wait_for(lambda: pod.probe("readiness") == 0, ready_timeout, f"{pod.name} is Ready again", cluster.logs)
    return hook_seconds


def broker_rollout(
    workdir: Path, cluster: SentinelCluster, *, settle_seconds: float = 3.0, every: float = 0.02
) -> RolloutResult:
    """Run the main worker pool on ``cluster``, send tasks, roll every data node in StatefulSet order, count."""
    workdir.mkdir(parents=True, exist_ok=True)
    node = sentinel_kubelet(workdir / "kubelet", cluster, free_port())
    try:
        worker = node.create_pod(WORKER)
        if not wait_until(lambda: worker.ready, 90):
            raise AssertionError("the worker never became ready:\n" + worker.describe() + worker.log()[-4000:])
        client = client_app(cluster)
        sends, stop = Sends(), threading.Event()
        journal = worker.volume_dirs["tmp"] / JOURNAL.removeprefix("/tmp/")
        master_before = cluster.master().name
        hook_seconds: dict[str, float] = {}
        with JournalWatch([journal]) as watch:
            producer = threading.Thread(target=produce, args=(client, stop, sends, every, "r"), daemon=True)
            producer.start()
            time.sleep(settle_seconds)
            began = time.monotonic()
            for pod in reversed(cluster.data_nodes):  # the highest ordinal first, node 0 last
                hook_seconds[pod.name] = round(replace_pod(cluster, pod), 2)
            roll_seconds = time.monotonic() - began
            time.sleep(settle_seconds)
            stop.set()
            producer.join(timeout=60)
            master = cluster.pods.wait_healthy(60)
            pending = drain_and_sweep(cluster, cluster.node_client(master), sends, watch, [worker])
        worker_ready_after = wait_until(lambda: worker.ready, 120)
        client.close()
        counts = watch.counts
        acknowledged = sends.acknowledged
        refused_seconds, longest_refusal = sends.refused_seconds()
        refusals: dict[str, int] = {}
        for why in sends.refused.values():
            reason = re.sub(r"\d+", "N", why)[:90]
            reason = f"NOREPLICAS: {reason}" if "NOREPLICAS" in why and "NOREPLICAS" not in reason else reason
            refusals[reason] = refusals.get(reason, 0) + 1
        return RolloutResult(
            hook=cluster.pre_stop,
            acknowledged=len(acknowledged),
            refused=len(sends.refused),
            refusals=refusals,
            completed=sum(1 for t in acknowledged if t in counts),
            lost=sorted(t for t in acknowledged if t not in counts),
            duplicated=sorted(t for t, n in counts.items() if n > 1),
            redelivered_after_visibility_timeout=[t for t in pending if t in acknowledged],
            refused_seconds=refused_seconds,
            longest_refusal_seconds=longest_refusal,
            longest_send_seconds=max(sends.took.values(), default=0.0),
            worker_restarts=worker.restarts,
            worker_exits=[k.reason for k in worker.kills] + _exit_lines(worker),
            master_before=master_before,
            master_after=master.name,
            started_as={p.name: _start_line(p) for p in cluster.data_nodes},
            pre_stop={p.name: p.last_pre_stop_log().strip() for p in cluster.data_nodes},
            hook_seconds=hook_seconds,
            roll_seconds=roll_seconds,
            worker_ready_after=worker_ready_after,
            pods=[worker],
        )
    finally:
        node.shutdown()


def _start_line(pod: ScriptPod) -> str:
    return next((line.split(": ", 1)[-1] for line in pod.last_start_log().splitlines() if "starting as" in line), "")


def _exit_lines(pod: Pod) -> list[str]:
    """The worker's own words when it exited (Celery's 'Unrecoverable error' and its cause)."""
    text = pod.log()
    return [line.strip()[:200] for line in text.splitlines() if "Unrecoverable error" in line]


__all__ = ["RolloutResult", "broker_rollout", "replace_pod"]
