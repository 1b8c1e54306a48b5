"""The kubelet's prober for one container: each probe on its own ticker, its thresholds counted.

This follows pkg/kubelet/prober/worker.go: one ticker per probe from container start, skipped until
initialDelaySeconds have passed; liveness and readiness skipped until the startup probe succeeds;
timeoutSeconds enforced (the probe's process group is killed); success and failure thresholds
counted. What a verdict does to the pod (started, ready, killed) is the pod's business:
``Pod.on_probe_result``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.runtime.harness.processes import run_exec_probe

if TYPE_CHECKING:
    from tests.runtime.harness.pod import Pod


@dataclass
class ProbeResult:
    """One run of a probe: when it started (monotonic), its exit code, duration and output."""

    at: float
    kind: str
    exit_code: int
    seconds: float
    output: str


def probe_loop(pod: Pod, kind: str, generation: int, started_at: float) -> None:
    """Run the pod's ``kind`` probe for one run of its main container, until the pod no longer needs it.

    ``generation`` names that run: once the container restarts or the pod is deleted, the loop ends
    and a result still in flight is dropped.
    """
    spec = pod.main.probes[kind]
    period = float(spec.get("periodSeconds", 10))
    initial = float(spec.get("initialDelaySeconds", 0))
    timeout = float(spec.get("timeoutSeconds", 1))
    need_success = int(spec.get("successThreshold", 1))
    need_failure = int(spec.get("failureThreshold", 3))
    successes = failures = 0
    tick = 0
    triggered = False
    while True:
        # Ticks at 0, period, 2 period ... from container start, skipped during initialDelaySeconds.
        due = started_at + tick * period
        tick += 1
        while time.monotonic() < due:
            if not pod.is_current(generation):
                return
            if kind == "readiness" and pod.started and not pod.ready and not triggered:
                # The kubelet runs readiness at once when startup has passed and the container is
                # not ready yet (pkg/kubelet/prober/prober_manager.go, manualTriggerCh), off the
                # ticker: the scheduled tick still comes.
                triggered = True
                tick -= 1
                break
            time.sleep(min(0.1, due - time.monotonic()))
        if not pod.is_current(generation):
            return
        if int(time.monotonic() - started_at) < initial:
            continue
        if kind != "startup" and not pod.started:
            continue
        t0 = time.monotonic()
        code, output = run_exec_probe(pod.probe_argv(kind), pod.main.env, pod.cluster.workdir, timeout)
        if code == 0:
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
        result = ProbeResult(t0, kind, code, time.monotonic() - t0, output)
        if not pod.on_probe_result(generation, result, successes >= need_success, failures >= need_failure):
            return
