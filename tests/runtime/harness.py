"""A tiny kubelet: runs the pods of ``celery_platform.render`` output as local processes, probes and all.

Everything a container runs is read from the rendered YAML: command, args, env, volume mounts, the
exec probes and their timing, terminationGracePeriodSeconds and the workload's update strategy.
Nothing is rebuilt here, so when the render changes, the harness follows. Only these translations
happen, each the local stand-in for something a cluster provides:

* ``secretKeyRef``: the Secret and key must exist in the render; the value comes from test values
  (the render prints secrets only as ``<secret>``).
* Services: an env value naming a rendered Service (``<svc>.<ns>.svc.<domain>``, alone or inside a URL)
  is mapped to a local address, and so is the Service's port in a container that names it.
* Volumes: emptyDir and ConfigMap volumes become per-pod directories (ConfigMap keys written as
  files); every mount path is rewritten to its directory in command, args, env and probe argv.
* The image: the argv runs with cwd = the sample app (the image's WORKDIR) and ``celery`` found on a
  PATH that starts with the venv's bin. Each pod gets its own hostname (a UTS namespace, when root),
  so that ``-n main@%h`` names each replica differently, as pod hostnames do.
* ``$(VAR)`` references in command and args are expanded from the container env, as the kubelet does.
* ``/proc/1/`` in a probe argv means the container's PID 1, which here is the main process's PID.

Probes follow the kubelet (pkg/kubelet/prober/worker.go): one ticker per probe from container start,
skipped until initialDelaySeconds have passed; liveness and readiness skipped until the startup probe
succeeds; timeoutSeconds enforced (the probe's process group is killed); success/failure thresholds
counted. A failed liveness or startup probe kills the container (SIGTERM to PID 1, then SIGKILL to
every process after the grace period) and restarts it, with the kubelet's back-off (0, 10, 20 ... s).

The parts: ``rendered.py`` reads the render, ``containers.py`` translates one container,
``pods.py`` runs one pod; this module rolls workloads out (``Kubelet``) and holds the tests' helpers.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The harness's parts, re-exported: tests and the benchmark use them as ``harness.<name>``.
from tests.runtime.containers import SAMPLE_APP_DIR, Cluster, ConfigError, ContainerPlan, PathMap, plan_container
from tests.runtime.pods import Kill, Pod, ProbeResult, Termination, _killpg, run_exec_probe
from tests.runtime.rendered import Manifests, broker_fqdn, render, test_secret_values

__all__ = [
    "SAMPLE_APP_DIR",
    "Cluster",
    "ConfigError",
    "ContainerPlan",
    "Kill",
    "Kubelet",
    "Manifests",
    "PathMap",
    "Pod",
    "ProbeResult",
    "Termination",
    "broker_fqdn",
    "celery_client",
    "plan_container",
    "processes_matching",
    "render",
    "run_exec_probe",
    "test_secret_values",
    "wait_until",
    "worker_queues",
]


@dataclass
class Kubelet:
    """Creates pods from a render's workloads and rolls them out as the workload's strategy says."""

    manifests: Manifests
    cluster: Cluster
    workdir: Path
    broker: Any = None
    """The local broker the Service is mapped to (a RedisServer in the tests), for the tests' use."""
    pods: list[Pod] = field(default_factory=list)

    def pod_spec(self, workload: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.manifests.workload(workload)["spec"]["template"]["spec"]
        return spec

    def replicas(self, workload: str) -> int:
        return int(self.manifests.workload(workload)["spec"].get("replicas", 1))

    def create_pod(self, workload: str, name: str | None = None) -> Pod:
        index = sum(1 for p in self.pods if p.name.startswith(workload))
        pod_name = name or f"{workload}-{index}"
        pod = Pod(pod_name, self.pod_spec(workload), self.cluster, self.workdir / pod_name)
        self.pods.append(pod)
        return pod.start()

    def scale_up(self, workload: str) -> list[Pod]:
        """Start every replica of the workload at once (a Deployment's ReplicaSet creates them together)."""
        return [self.create_pod(workload) for _ in range(self.replicas(workload))]

    def rollout(self, workload: str, old: Sequence[Pod], ready_timeout: float = 120) -> list[Pod]:
        """Replace ``old`` pods as the rendered strategy would; return the new pods.

        StatefulSet: for each ordinal, delete the old pod and wait until it is gone, then create the
        new one. Deployment Recreate: delete all, then create all. Deployment RollingUpdate: surge
        one new pod, wait until it is ready, then delete one old pod (maxSurge 1, maxUnavailable 0).
        """
        doc = self.manifests.workload(workload)
        new: list[Pod] = []
        if doc["kind"] == "StatefulSet":
            for index, pod in enumerate(old):
                pod.delete()
                new.append(self.create_pod(workload, name=f"{workload}-{index}-r{len(self.pods)}"))
                _wait(lambda: new[-1].ready, ready_timeout)
        elif doc["spec"].get("strategy", {}).get("type") == "Recreate":
            for pod in old:
                pod.delete()
            new = [self.create_pod(workload) for _ in old]
        else:
            for pod in old:
                fresh = self.create_pod(workload)
                new.append(fresh)
                _wait(lambda fresh=fresh: fresh.ready, ready_timeout)  # type: ignore[misc]
                pod.delete()
        return new

    def shutdown(self) -> None:
        for pod in self.pods:
            if not pod._stop.is_set():
                pod.delete(grace_seconds=0)
            elif pod.process is not None:
                _killpg(pod.process.pid, signal.SIGKILL)


def _wait(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll predicate until true or timeout seconds pass."""
    return _wait(predicate, timeout, interval)


def processes_matching(needle: str, among: Iterable[int] | None = None) -> list[int]:
    """PIDs whose /proc cmdline contains needle (used to count beats, independent of the harness)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (among is not None and int(entry.name) not in among):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def celery_client(broker_url: str, queues: Sequence[str]) -> Any:
    """A client Celery app that sends by name to ``queues`` (one direct exchange and key each, like the app)."""
    from celery import Celery
    from kombu import Exchange, Queue

    client = Celery("runtime-client", broker=broker_url, backend=broker_url)
    client.conf.task_queues = [Queue(q, Exchange(q), routing_key=q) for q in queues]  # type: ignore[no-untyped-call]
    return client


def worker_queues(pod_spec: Mapping[str, Any]) -> list[str]:
    """The queues a rendered worker consumes: the value after ``-Q`` in its args."""
    args = [*(pod_spec["containers"][0].get("command") or []), *(pod_spec["containers"][0].get("args") or [])]
    return str(args[args.index("-Q") + 1]).split(",")
