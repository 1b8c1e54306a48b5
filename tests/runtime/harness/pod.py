"""One pod of a rendered workload, run the way the kubelet runs it: init containers, then the main one.

The pod's containers are planned by ``translation`` and probed by ``probes``. A failed liveness or
startup probe kills the container (SIGTERM to PID 1, then SIGKILL to every process after the grace
period) and restarts it, with the kubelet's back-off (0, 10, 20 ... s); so does a container that exits.
Each pod gets its own hostname (a UTS namespace, when root), so that ``-n main@%h`` names each replica
differently, as pod hostnames do. ``/proc/1/`` in a probe argv means the container's PID 1, which here
is the main process's PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.runtime.harness.probes import ProbeResult, probe_loop
from tests.runtime.harness.processes import IMAGE_PATH, killpg
from tests.runtime.harness.translation import Cluster, ConfigError, ContainerPlan, plan_container

BACKOFF_START_SECONDS, BACKOFF_MAX_SECONDS = 10.0, 300.0


@dataclass
class Termination:
    """How a container ended: exit code, seconds from SIGTERM to exit, and whether SIGKILL was needed."""

    exit_code: int | None
    seconds: float
    killed: bool


@dataclass
class Kill:
    """A probe gave up at ``decided_at`` (monotonic); ``termination`` is set once the container ended."""

    decided_at: float
    reason: str
    termination: Termination | None = None


@dataclass
class Pod:
    """One pod of a rendered workload, run by a background thread the way the kubelet runs it."""

    name: str
    pod_spec: dict[str, Any]
    cluster: Cluster
    workdir: Path
    uts: bool = field(default_factory=lambda: os.geteuid() == 0 and shutil.which("unshare") is not None)
    restarts: int = 0
    probe_restarts: dict[str, int] = field(default_factory=lambda: {"liveness": 0, "startup": 0})
    ready: bool = False
    started: bool = False
    probe_log: list[ProbeResult] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    ready_since: float | None = None
    in_main: bool = False
    kills: list[Kill] = field(default_factory=list)
    """Each probe-triggered kill, recorded when the probe gives up; its termination once it ends."""

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._kill_request: str | None = None
        self._wake = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self.created_at = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.volume_dirs = self._make_volumes()
        self.main = plan_container(self.pod_spec["containers"][0], self.pod_spec, self.cluster, self.volume_dirs)
        self.inits = [
            plan_container(c, self.pod_spec, self.cluster, self.volume_dirs)
            for c in self.pod_spec.get("initContainers") or []
        ]
        self.grace_seconds = float(self.pod_spec.get("terminationGracePeriodSeconds", 30))
        self.termination: Termination | None = None

    # -- set-up ------------------------------------------------------------------------------------

    def _make_volumes(self) -> dict[str, Path]:
        config_maps = self.cluster.manifests.config_maps()
        dirs: dict[str, Path] = {}
        for volume in self.pod_spec.get("volumes") or []:
            path = self.workdir / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                data = config_maps[volume["configMap"]["name"]]
                for key, text in data.items():
                    (path / key).write_text(text)
                    (path / key).chmod(int(volume["configMap"].get("defaultMode", 0o644)))
            elif "secret" in volume:
                # Only Secrets that exist outside the render (a broker CA); items map keys to file names.
                secret = self.cluster.external_secrets[volume["secret"]["secretName"]]
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in secret]
                for item in items:
                    (path / item["path"]).write_text(secret[item["key"]])
            elif "emptyDir" not in volume:
                raise ConfigError(f"{self.name}: volume {volume['name']} is neither emptyDir, configMap nor secret")
            dirs[volume["name"]] = path
        return dirs

    def event(self, text: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), text))

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Pod:
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _launch(self, plan: ContainerPlan, label: str) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{label}.log"
        self.logs.append(log)
        argv = plan.argv
        if self.uts:
            # A UTS namespace only to give the pod its own hostname; exec keeps the argv's PID.
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]
        base = {"PATH": IMAGE_PATH, "HOME": str(self.workdir), "LANG": "C.UTF-8", "HOSTNAME": self.name}
        with log.open("wb") as out:
            return subprocess.Popen(
                argv,
                env={**base, **plan.env},
                cwd=self.cluster.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _run(self) -> None:
        for index, plan in enumerate(self.inits):
            attempt = 0
            while not self._stop.is_set():
                process = self._launch(plan, f"init-{index}-{plan.name}-{attempt}")
                with self._lock:
                    self.process = process
                self.event(f"init {plan.name} started")
                code = self._wait_exit(process)
                if code == 0:
                    self.event(f"init {plan.name} completed")
                    break
                if self._stop.is_set():
                    return
                self.event(f"init {plan.name} failed with {code}")
                attempt += 1
                self._stop.wait(min(BACKOFF_START_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS))
        run = 0
        while not self._stop.is_set():
            process = self._launch(self.main, f"{self.main.name}-{run}")
            self.in_main = True
            started_at = time.monotonic()
            with self._lock:
                self.process, self.started, self.ready, self.ready_since = process, False, False, None
                self._kill_request = None
                self._generation += 1
                generation = self._generation
            self.event(f"{self.main.name} started (run {run})")
            threads = [
                threading.Thread(target=probe_loop, args=(self, kind, generation, started_at), daemon=True)
                for kind in self.main.probes
            ]
            if "startup" not in self.main.probes:
                self.started = True
            for thread in threads:
                thread.start()
            while process.poll() is None and not self._stop.is_set() and self._kill_request is None:
                self._wake.wait(0.1)
                self._wake.clear()
            with self._lock:
                self._generation += 1
                reason = self._kill_request
                self.started = self.ready = False
                self.ready_since = None
            if self._stop.is_set():
                return
            if reason is not None:
                kill = Kill(time.monotonic(), reason)
                self.kills.append(kill)
                self.event(f"{self.main.name} failed its {reason} probe; killing")
                kill.termination = self._terminate(process, self.kill_grace_seconds(reason))
                self.probe_restarts[reason] += 1
            else:
                killpg(process.pid, signal.SIGKILL)
                self.event(f"{self.main.name} exited with {process.returncode}")
            self.restarts += 1
            run += 1
            # The kubelet's CrashLoopBackOff: the first restart is immediate, then 10 s, doubling.
            delay = (
                0.0
                if self.restarts == 1
                else min(BACKOFF_START_SECONDS * 2 ** (self.restarts - 2), BACKOFF_MAX_SECONDS)
            )
            self._stop.wait(delay)

    def _wait_exit(self, process: subprocess.Popen[bytes]) -> int | None:
        while process.poll() is None:
            if self._stop.wait(0.1):
                return None
        return process.returncode

    def is_current(self, generation: int) -> bool:
        """True while ``generation`` is the running main container's: no restart or deletion since."""
        return self._generation == generation

    def on_probe_result(self, generation: int, result: ProbeResult, succeeded: bool, failed: bool) -> bool:
        """Record a probe's result and act on its verdict (thresholds reached); False ends that probe's loop.

        A result of an earlier run of the container (``generation``) is dropped. Startup passed marks
        the container started; startup or liveness failed has it killed and restarted; readiness
        flips the pod's readiness.
        """
        with self._lock:
            if self._generation != generation:
                return False
            self.probe_log.append(result)
            if result.kind == "startup":
                if succeeded:
                    self.started = True
                    self.event("started")
                    return False
                if failed:
                    self._kill_request = "startup"
                    self._wake.set()
                    return False
            elif result.kind == "liveness" and failed:
                self._kill_request = "liveness"
                self._wake.set()
                return False
            elif result.kind == "readiness":
                if succeeded and not self.ready:
                    self.ready, self.ready_since = True, time.monotonic()
                    self.event("ready")
                elif failed and self.ready:
                    self.ready, self.ready_since = False, None
                    self.event("not ready")
            return True

    def _terminate(self, process: subprocess.Popen[bytes], grace_seconds: float) -> Termination:
        t0 = time.monotonic()
        killed = False
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)  # only PID 1 receives it, as in a container
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                killed = True
        # When PID 1 of a container ends, every other process in it is killed too.
        killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        return Termination(process.returncode, time.monotonic() - t0, killed)

    def kill_grace_seconds(self, reason: str) -> float:
        """The grace a probe-triggered kill gets: the probe's terminationGracePeriodSeconds, else the pod's."""
        probe = self.main.probes.get(reason, {})
        return float(probe.get("terminationGracePeriodSeconds", self.grace_seconds))

    def delete(self, grace_seconds: float | None = None) -> Termination:
        """Delete the pod: SIGTERM to PID 1, SIGKILL to every process after the grace period."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            self._generation += 1
            process = self.process
        if self._thread is not None:
            self._thread.join(timeout=5)
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        result = self._terminate(process, grace) if process is not None else Termination(None, 0.0, False)
        self.termination = result
        self.ready = self.started = False
        self.event(f"deleted ({result})")
        return result

    # -- faults and observations ------------------------------------------------------------------

    def signal_main(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the main container's PID 1 only."""
        assert self.process is not None
        self.process.send_signal(sig)

    def kill_container(self) -> None:
        """SIGKILL every process of the running container (an OOM kill or a node crash); it restarts."""
        assert self.process is not None
        killpg(self.process.pid, signal.SIGKILL)
        self._wake.set()

    @property
    def deleted(self) -> bool:
        """True from the moment the pod's deletion starts: it is no longer one of its workload's replicas."""
        return self._stop.is_set()

    def running(self) -> bool:
        process = self.process
        return process is not None and process.poll() is None and not self._stop.is_set()

    def main_running(self) -> bool:
        """True while this pod's main container (not an init container) has a live process."""
        return self.in_main and self.running()

    def log(self) -> str:
        return "\n".join(f"==> {p.name}\n{p.read_text(errors='replace')}" for p in self.logs if p.exists())

    def describe(self) -> str:
        lines = [f"pod {self.name}: ready={self.ready} restarts={self.restarts} probe_restarts={self.probe_restarts}"]
        lines += [f"  {t - self.created_at:7.2f}s {text}" for t, text in self.events]
        lines += [
            f"  {p.at - self.created_at:7.2f}s probe {p.kind} -> {p.exit_code} ({p.seconds:.2f}s) {p.output.strip()}"
            for p in self.probe_log
            if p.exit_code != 0
        ]
        return "\n".join(lines)

    def probe_argv(self, kind: str) -> list[str]:
        """The probe's argv as it runs here: ``/proc/1/`` (PID 1 of the container) is the main process."""
        pid = self.process.pid if self.process is not None else 1
        return [a.replace("/proc/1/", f"/proc/{pid}/") for a in self.main.probe_argv(kind)]

    def probe_results(self, kind: str) -> list[ProbeResult]:
        with self._lock:
            return [p for p in self.probe_log if p.kind == kind]
