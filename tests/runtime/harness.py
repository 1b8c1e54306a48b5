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
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APP_DIR = REPO / "examples" / "sample_app"
VENV_BIN = Path(sys.executable).parent
IMAGE_PATH = f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"
BACKOFF_START_SECONDS, BACKOFF_MAX_SECONDS = 10.0, 300.0
_render_cache: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}


# ---------------------------------------------------------------------------------------------------
# Render
# ---------------------------------------------------------------------------------------------------


def render(stack: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Return the stack's rendered documents, with config ``overrides`` (short key → value) applied.

    The stack files are copied to a temporary project dir, the overrides written into its
    ``Pulumi.<stack>.yaml`` and ``infra`` symlinked; ``python -m celery_platform.render`` runs in a subprocess
    so that the mock engine's global state never leaks into the test process. Cached per input.
    """
    items = tuple(sorted((k, yaml.safe_dump(v)) for k, v in (overrides or {}).items()))
    key = (stack, items)
    if key not in _render_cache:
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            project = Path(tmp)
            shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
            stack_doc = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text()) or {}
            config = stack_doc.setdefault("config", {})
            for short, value in (overrides or {}).items():
                config[f"celery-platform:{short}"] = value if isinstance(value, str) else str(value)
            (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_doc))
            (project / "infra").symlink_to(REPO / "infra")
            out = project / "rendered.yaml"
            argv = [
                sys.executable,
                "-m",
                "celery_platform.render",
                stack,
                "-o",
                str(out),
                "--project-dir",
                str(project),
            ]
            done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"render of {stack} with {overrides} failed:\n{done.stderr}")
            _render_cache[key] = [d for d in yaml.safe_load_all(out.read_text()) if d]
    return _render_cache[key]


@dataclass(frozen=True)
class Manifests:
    """Lookups into one rendered stack."""

    documents: list[dict[str, Any]]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.documents:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"no {kind} {name} in the render")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def workload(self, name: str) -> dict[str, Any]:
        for doc in self.documents:
            if doc["kind"] in {"Deployment", "StatefulSet"} and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"no Deployment or StatefulSet {name} in the render")

    def secret_keys(self) -> dict[str, set[str]]:
        return {
            d["metadata"]["name"]: set((d.get("stringData") or {}) | (d.get("data") or {}))
            for d in self.of_kind("Secret")
        }

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: dict(d.get("data") or {}) for d in self.of_kind("ConfigMap")}

    def services(self) -> list[tuple[str, str, list[int]]]:
        """(name, namespace, ports) of every Service."""
        return [
            (d["metadata"]["name"], d["metadata"]["namespace"], [int(p["port"]) for p in d["spec"].get("ports", [])])
            for d in self.of_kind("Service")
        ]


# ---------------------------------------------------------------------------------------------------
# Translation of one container
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """What the cluster would provide: Secret values by key, and local addresses of Services."""

    manifests: Manifests
    secret_values: Mapping[str, str]
    """Test value of each Secret key (``CELERY_BROKER_URL``, ``SECRET_KEY``, ...)."""
    service_addresses: Mapping[str, tuple[str, int]]
    """Service name → local (host, port)."""
    external_secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Secrets that exist in the cluster but not in the render (an external broker's): name → key → value."""
    host_addresses: Mapping[str, str] = field(default_factory=dict)
    """Hosts outside the cluster (an external broker) → the local address that stands in for them."""
    image_paths: Mapping[str, Path] = field(default_factory=dict)
    """Directories of the image (``/app``) → local directories, rewritten like mount paths."""
    image_workdir: Path | None = None
    """The image's WORKDIR, the cwd of every process. Default: the sample app's directory."""

    @property
    def workdir(self) -> Path:
        return self.image_workdir or SAMPLE_APP_DIR


class ConfigError(RuntimeError):
    """The kubelet's CreateContainerConfigError: a Secret or key that the render does not have."""


def _expand(value: str, env: Mapping[str, str]) -> str:
    # Kubernetes expands $(VAR) from the container env; $$ escapes; unknown references stay as they are.
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


@dataclass
class ContainerPlan:
    """One container translated for local execution."""

    name: str
    argv: list[str]
    env: dict[str, str]
    probes: dict[str, dict[str, Any]]
    paths: dict[str, Path]

    def probe_argv(self, kind: str) -> list[str]:
        return list(self.probes[kind]["exec"]["command"])


class PathMap:
    """Rewrites the mount paths of one container to local directories, longest prefix first."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        self.mounts = dict(sorted(mounts.items(), key=lambda kv: -len(kv[0])))
        alternatives = "|".join(re.escape(m.rstrip("/")) for m in self.mounts)
        self._pattern = re.compile(rf"(?<![\w.\-/])({alternatives})(?=/|$|:|\s|\"|'|;)") if self.mounts else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        lookup = {m.rstrip("/"): str(p) for m, p in self.mounts.items()}
        return self._pattern.sub(lambda m: lookup[m.group(1)], text)


def plan_container(
    container: Mapping[str, Any], pod_spec: Mapping[str, Any], cluster: Cluster, volume_dirs: Mapping[str, Path]
) -> ContainerPlan:
    """Translate a rendered container: env resolved, services mapped, mount paths rewritten."""
    keys = cluster.manifests.secret_keys()
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        external = cluster.external_secrets.get(ref["name"], {})
        if ref["key"] in external:
            env[item["name"]] = external[ref["key"]]
            continue
        if ref["name"] not in keys or ref["key"] not in keys[ref["name"]]:
            raise ConfigError(f"{container['name']}: secret {ref['name']!r} has no key {ref['key']!r} in the render")
        if ref["key"] not in cluster.secret_values:
            raise ConfigError(f"no test value for secret key {ref['key']!r}")
        env[item["name"]] = cluster.secret_values[ref["key"]]
    env = _map_services(env, cluster)
    for host, local in cluster.host_addresses.items():
        env = {k: v.replace(host, local) for k, v in env.items()}
    mounts = {m["mountPath"]: volume_dirs[m["name"]] for m in container.get("volumeMounts") or []}
    rewrite = PathMap({**cluster.image_paths, **mounts})
    env = {k: rewrite(v) for k, v in env.items()}
    argv = [rewrite(_expand(str(a), env)) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if not argv:
        raise ConfigError(f"{container['name']}: no command; the image's entrypoint cannot be read from YAML")
    probes: dict[str, dict[str, Any]] = {}
    for kind in ("startup", "liveness", "readiness"):
        spec = container.get(f"{kind}Probe")
        if spec and "httpGet" in spec:
            probes[kind] = {**spec, "exec": {"command": _http_get_argv(container, spec["httpGet"])}}
            del probes[kind]["httpGet"]
        elif spec:
            if "exec" not in spec:
                raise ConfigError(
                    f"{container['name']}: only exec and httpGet probes are supported (got {sorted(spec)})"
                )
            probes[kind] = {**spec, "exec": {"command": [rewrite(str(a)) for a in spec["exec"]["command"]]}}
    return ContainerPlan(container["name"], argv, env, probes, mounts)


# The kubelet's httpGet: success on a status from 200 to 399. urlopen raises on 400 and above.
_HTTP_GET = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))"


def _http_get_argv(container: Mapping[str, Any], http_get: Mapping[str, Any]) -> list[str]:
    """Translate an httpGet probe into an argv that GETs the same path on 127.0.0.1 (the pod's IP here)."""
    port = http_get["port"]
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        if port not in named:
            raise ConfigError(f"{container['name']}: probe port {port!r} is not a named container port")
        port = named[port]
    return [sys.executable, "-c", _HTTP_GET, f"http://127.0.0.1:{int(port)}{http_get.get('path', '/')}", "5"]


def _map_services(env: dict[str, str], cluster: Cluster) -> dict[str, str]:
    result = dict(env)
    for name, namespace, ports in cluster.manifests.services():
        if name not in cluster.service_addresses:
            continue
        host, port = cluster.service_addresses[name]
        fqdn = re.compile(rf"(?<![\w.-]){re.escape(name)}\.{re.escape(namespace)}\.svc(\.[a-z0-9-]+)*(?![\w-])")
        named = False
        for key, value in list(result.items()):
            if fqdn.search(value):
                named = True
                mapped = fqdn.sub(host, value)
                for svc_port in ports:
                    mapped = mapped.replace(f"{host}:{svc_port}", f"{host}:{port}")
                result[key] = mapped
        if named:
            # A bare port next to a mapped host (REDIS_PORT=6379) is that Service's port.
            for key, value in list(result.items()):
                if value.strip() in {str(p) for p in ports}:
                    result[key] = str(port)
    return result


# ---------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class ProbeResult:
    at: float
    kind: str
    exit_code: int
    seconds: float
    output: str


def run_exec_probe(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout_seconds: float) -> tuple[int, str]:
    """Run an exec probe; on timeout its whole process group is killed and it counts as a failure (-1)."""
    process = subprocess.Popen(
        list(argv),
        env={"PATH": IMAGE_PATH, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return -1, f"timed out after {timeout_seconds}s"
    return process.returncode, out.decode(errors="replace")


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
                data = self.cluster.external_secrets[volume["secret"]["secretName"]]
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (path / item["path"]).write_text(data[item["key"]])
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
                threading.Thread(target=self._probe_loop, args=(kind, generation, started_at), daemon=True)
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
                _killpg(process.pid, signal.SIGKILL)
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

    def _probe_loop(self, kind: str, generation: int, started_at: float) -> None:
        spec = self.main.probes[kind]
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
                if self._generation != generation:
                    return
                if kind == "readiness" and self.started and not self.ready and not triggered:
                    # The kubelet runs readiness at once when startup has passed and the container is
                    # not ready yet (pkg/kubelet/prober/prober_manager.go, manualTriggerCh), off the
                    # ticker: the scheduled tick still comes.
                    triggered = True
                    tick -= 1
                    break
                time.sleep(min(0.1, due - time.monotonic()))
            if self._generation != generation:
                return
            if int(time.monotonic() - started_at) < initial:
                continue
            if kind != "startup" and not self.started:
                continue
            t0 = time.monotonic()
            code, output = run_exec_probe(self.probe_argv(kind), self.main.env, self.cluster.workdir, timeout)
            with self._lock:
                if self._generation != generation:
                    return
                self.probe_log.append(ProbeResult(t0, kind, code, time.monotonic() - t0, output))
                if code == 0:
                    successes, failures = successes + 1, 0
                else:
                    successes, failures = 0, failures + 1
                if kind == "startup":
                    if successes >= need_success:
                        self.started = True
                        self.event("started")
                        return
                    if failures >= need_failure:
                        self._kill_request = "startup"
                        self._wake.set()
                        return
                elif kind == "liveness" and failures >= need_failure:
                    self._kill_request = "liveness"
                    self._wake.set()
                    return
                elif kind == "readiness":
                    if successes >= need_success and not self.ready:
                        self.ready, self.ready_since = True, time.monotonic()
                        self.event("ready")
                    elif failures >= need_failure and self.ready:
                        self.ready, self.ready_since = False, None
                        self.event("not ready")

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
        _killpg(process.pid, signal.SIGKILL)
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
        _killpg(self.process.pid, signal.SIGKILL)
        self._wake.set()

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


# ---------------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------------


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


def test_secret_values(redis_password: str, broker_host: str, broker_port: int) -> dict[str, str]:
    """Valid test values for every key of the rendered Secrets.

    The broker URL is shaped as the program builds it (from the Service's cluster FQDN), so the
    Service mapping is what points it at the local Redis.
    """
    from cryptography.fernet import Fernet

    return {
        "CELERY_BROKER_URL": f"redis://:{redis_password}@{broker_host}:{broker_port}/0",
        "REDIS_PASSWORD": redis_password,
        "SECRET_KEY": "runtime-test-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789" * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgresql://app:app-password@db.invalid:5432/app",
        "SENTRY_DSN": "",
    }


test_secret_values.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def broker_fqdn(manifests: Manifests, service: str = "redis") -> tuple[str, int]:
    """The broker Service's cluster address as the init container names it (REDIS_HOST, REDIS_PORT)."""
    for doc in manifests.documents:
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for init in doc["spec"]["template"]["spec"].get("initContainers") or []:
            env = {e["name"]: e.get("value") for e in init.get("env") or []}
            if env.get("REDIS_HOST", "").startswith(f"{service}."):
                return str(env["REDIS_HOST"]), int(env["REDIS_PORT"])
    raise KeyError(f"no init container names the {service} Service")


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
