"""Workloads: the pods of a render's Deployments and StatefulSets, created and rolled out as their specs say."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.runtime.harness.pod import Pod
from tests.runtime.harness.processes import killpg
from tests.runtime.harness.render import Manifests
from tests.runtime.harness.scenario import wait_until
from tests.runtime.harness.translation import Cluster


@dataclass
class Kubelet:
    """Creates pods from a render's workloads and rolls them out as the workload's strategy says."""

    manifests: Manifests
    cluster: Cluster
    workdir: Path
    broker: Any = None
    """The local broker the Service is mapped to (a RedisServer in the tests), for the tests' use."""
    pods: list[Pod] = field(default_factory=list)
    _replicas_of: dict[str, list[Pod]] = field(default_factory=dict, repr=False)

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
        self._replicas_of.setdefault(workload, []).append(pod)
        return pod.start()

    def live_pods(self, workload: str) -> list[Pod]:
        """The workload's pods that are not being deleted, oldest first."""
        return [p for p in self._replicas_of.get(workload, []) if not p.deleted]

    def scale(self, workload: str, replicas: int) -> list[Pod]:
        """Set the workload's replica count, as KEDA does through the scale subresource; return its live pods.

        Scaling up creates the missing pods at once. Scaling down deletes the surplus at once, newest
        first (the ReplicaSet controller's choice among pods that are all ready): each gets SIGTERM and
        its own terminationGracePeriodSeconds, and this returns once all are gone. ``Pod.termination``
        then tells how each one ended.
        """
        live = self.live_pods(workload)
        for _ in range(replicas - len(live)):
            self.create_pod(workload)
        surplus = live[max(replicas, 0) :][::-1]
        if surplus:
            with ThreadPoolExecutor(max_workers=len(surplus), thread_name_prefix=f"scale-{workload}") as deleting:
                list(deleting.map(lambda pod: pod.delete(), surplus))
        return self.live_pods(workload)

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
                wait_until(lambda: new[-1].ready, ready_timeout)
        elif doc["spec"].get("strategy", {}).get("type") == "Recreate":
            for pod in old:
                pod.delete()
            new = [self.create_pod(workload) for _ in old]
        else:
            for pod in old:
                fresh = self.create_pod(workload)
                new.append(fresh)
                wait_until(lambda fresh=fresh: fresh.ready, ready_timeout)  # type: ignore[misc]
                pod.delete()
        return new

    def shutdown(self) -> None:
        for pod in self.pods:
            if not pod.deleted:
                pod.delete(grace_seconds=0)
            elif pod.process is not None:
                killpg(pod.process.pid, signal.SIGKILL)
