"""A tiny kubelet: runs the pods of ``celery_platform.render`` output as local processes, probes and all.

Everything a container runs is read from the rendered YAML: command, args, env, volume mounts, the
exec probes and their timing, terminationGracePeriodSeconds and the workload's update strategy.
Nothing is rebuilt here, so when the render changes, the harness follows. One module per part:

* ``render``: the render of a stack and lookups into it (``Manifests``).
* ``translation``: a rendered container as a local process plan; the only stand-ins for what a
  cluster provides (Secret values, Service addresses, volumes, the image) live there.
* ``processes``: the container runtime's part: process groups, exec probes, /proc lookups.
* ``probes``: the kubelet's prober: tickers, delays, timeouts and thresholds.
* ``pod``: one pod's lifecycle: init containers, restarts with back-off, deletion with a grace period.
* ``workloads``: the ``Kubelet`` that creates a workload's pods, rolls them out and scales them.
* ``scenario``: what tests use beside the pods: a Celery client, ``wait_until``.

Everything a test or benchmark uses is importable from ``tests.runtime.harness`` itself.
"""

from tests.runtime.harness.pod import Kill, Pod, Termination
from tests.runtime.harness.probes import ProbeResult
from tests.runtime.harness.processes import IMAGE_PATH, VENV_BIN, processes_matching, run_exec_probe
from tests.runtime.harness.render import REPO, Manifests, broker_fqdn, render
from tests.runtime.harness.scenario import celery_client, wait_until, worker_queues
from tests.runtime.harness.translation import (
    SAMPLE_APP_DIR,
    Cluster,
    ConfigError,
    ContainerPlan,
    PathMap,
    plan_container,
    test_secret_values,
)
from tests.runtime.harness.workloads import Kubelet

__all__ = [
    "IMAGE_PATH",
    "REPO",
    "SAMPLE_APP_DIR",
    "VENV_BIN",
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
