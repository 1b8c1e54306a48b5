"""Fixtures for the runtime tier: a real redis-server and real Celery processes, no mocks.

The containers' exact argv, env and probe commands run here as local processes. Only two things are
translated: ``celery`` resolves to the venv's executable (through PATH), and the ConfigMap mount
point on PYTHONPATH is replaced by the source directory of the hooks module (the sample app's
directory is appended, standing in for the image's WORKDIR).

Everything is handed out as fixtures, because test modules cannot import a conftest reliably; they
import its classes under ``TYPE_CHECKING`` only, for annotations.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from celery import Celery

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

from celery_platform.builders.probes import (
    ProbeCommands,
    beat_args,
    beat_env,
    beat_probe_commands,
    worker_env,
    worker_include_args,
    worker_probe_commands,
)
from celery_platform.config.volumes import HOOKS_MOUNT_PATH
from tests.runtime.harness.sentinel import SentinelCluster

REPO = Path(__file__).resolve().parents[2]
HOOKS_DIR = REPO / "components" / "celery_platform" / "hooks"
SAMPLE_APP_DIR = REPO / "examples" / "sample_app"
VENV_BIN = Path(sys.executable).parent
REDIS_PASSWORD = "s3cret-Pa55word"
SENTINEL_PASSWORD = "s3ntinel-Pa55word"
QUEUES = ("default", "high", "low", "email", "reports", "media", "webhooks", "maintenance")
# Short on purpose, to keep the tier fast; production values come from the components' defaults.
WORKER_HEARTBEAT_MAX_AGE_SECONDS = 2
BEAT_MAX_INTERVAL_SECONDS = 1
BEAT_HEARTBEAT_MAX_AGE_SECONDS = 3


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll predicate until it is true or timeout seconds have passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass
class RedisServer:
    """One redis-server on a fixed port, which can be stopped and started again on that port."""

    port: int
    workdir: Path
    password: str = REDIS_PASSWORD
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db)

    def extra_env(self) -> dict[str, str]:
        """Env beside CELERY_BROKER_URL that a client of this broker needs: none for a plain Redis."""
        return {}

    def transport_options(self) -> dict[str, object]:
        return {}

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run `apt-get install -y redis-server` (never skipped)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            self.password,
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
        ]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not _wait_until(self._pings, timeout=10):
            self.stop()
            pytest.fail(f"redis-server did not answer on port {self.port}; see {self.workdir}/redis.log")

    def _pings(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Factory of redis-servers, each on its own free port with a password; started unless ``start=False``."""
    servers: list[RedisServer] = []

    def make(start: bool = True) -> RedisServer:
        server = RedisServer(port=free_port(), workdir=tmp_path / f"redis-{len(servers)}")
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.stop()


Broker = RedisServer | SentinelCluster


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[Callable[..., SentinelCluster]]:
    """Factory of started Sentinel deployments: 1 primary, 2 replicas, 3 Sentinels (quorum 2), auth on all."""
    clusters: list[SentinelCluster] = []

    def make(**kwargs: Any) -> SentinelCluster:
        cluster = SentinelCluster(
            tmp_path / f"sentinel-cluster-{len(clusters)}", REDIS_PASSWORD, SENTINEL_PASSWORD, **kwargs
        )
        clusters.append(cluster)
        try:
            return cluster.start()
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{cluster.logs()}")

    yield make
    for cluster in clusters:
        cluster.shutdown()


def client_app(broker: Broker, name: str = "client") -> Celery:
    """A client Celery app of ``broker``, results included, configured as the platform configures apps."""
    app = Celery(name, broker=broker.url(), backend=broker.url())
    app.conf.broker_transport_options = broker.transport_options()
    app.conf.result_backend_transport_options = broker.transport_options()
    return app


@dataclass
class CeleryProcess:
    """A Celery process started the way the kubelet starts a container: argv, env, cwd."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_tree(self) -> None:
        """Kill the process and its pool children at once; tests that need a warm shutdown ask for it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def local_env(env: Mapping[str, str]) -> dict[str, str]:
    """The container env, with the ConfigMap mount point on PYTHONPATH mapped to the source tree."""
    result = dict(env)
    paths = result.get("PYTHONPATH", "").split(os.pathsep) if result.get("PYTHONPATH") else []
    paths = [str(HOOKS_DIR) if p == HOOKS_MOUNT_PATH else p for p in paths]
    result["PYTHONPATH"] = os.pathsep.join([*paths, str(SAMPLE_APP_DIR)])
    return result


@pytest.fixture
def start_celery(tmp_path: Path) -> Iterator[Callable[..., CeleryProcess]]:
    """Factory that starts ``celery ...`` argv with exactly the given env (plus PATH, HOME, LANG)."""
    started: list[CeleryProcess] = []

    def start(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> CeleryProcess:
        # Unbuffered, so that the banner (printed to stdout) and the log (stderr) stay in order.
        base = {
            "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        log_path = tmp_path / f"celery-{len(started)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                env={**base, **local_env(env)},
                cwd=cwd or tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = CeleryProcess(popen=popen, log_path=log_path, argv=list(argv))
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill_tree()


def _run_probe(argv: Sequence[str], timeout: float = 5) -> int:
    """Run an exec probe the way the kubelet does (argv, no shell, with a timeout): its exit code."""
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        return -1


@pytest.fixture
def run_probe() -> Callable[[Sequence[str]], int]:
    """Run an exec-probe argv and return its exit code (-1 when it times out)."""
    return _run_probe


@pytest.fixture
def wait_until() -> Callable[..., bool]:
    """Poll a predicate until it is true or a timeout passes: ``wait_until(predicate, timeout)``."""
    return _wait_until


@pytest.fixture
def app_env() -> Callable[[Broker], dict[str, str]]:
    """The sample app's env contract, as the platform's secrets would provide it."""
    from cryptography.fernet import Fernet

    def make(server: Broker) -> dict[str, str]:
        return {
            "CELERY_BROKER_URL": server.url(),
            **server.extra_env(),
            "CELERY_VISIBILITY_TIMEOUT_SECONDS": "600",
            "CELERY_TASK_ACKS_LATE": "true",
            "CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
            "SECRET_KEY": "k" * 10 + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
            "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SAMPLE_APP_PERIODIC_SECONDS": "1",
        }

    return make


@dataclass(frozen=True)
class Service:
    """A started worker or beat, with its broker, state directory, probes and a client app."""

    process: CeleryProcess
    broker: Broker
    state_dir: Path
    probes: ProbeCommands
    client: Celery

    def probe(self, kind: str) -> int:
        """Run the startup, liveness or readiness probe; return its exit code."""
        argv: list[str] = getattr(self.probes, kind)
        return _run_probe(argv)

    def passes_liveness_throughout(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.probe("liveness") != 0:
                return False
            time.sleep(0.25)
        return True

    def wait_for_startup(self, timeout: float = 30) -> None:
        if not _wait_until(lambda: self.probe("startup") == 0, timeout=timeout):
            pytest.fail(f"startup probe never passed; log:\n{self.process.log()}")


@pytest.fixture
def start_worker(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    start_celery: Callable[..., CeleryProcess],
    app_env: Callable[[Broker], dict[str, str]],
) -> Iterator[Callable[..., Service]]:
    """Factory: a worker with the hooks (concurrency 2, all eight queues), by default started up."""
    clients: list[Celery] = []

    def start(broker: Broker | None = None, wait_ready: bool = True, name: str = "worker") -> Service:
        server = broker or redis_server()
        state_dir = tmp_path / f"{name}-state"
        argv = [
            "celery",
            "-A",
            "sample_app",
            "worker",
            *worker_include_args(),
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            *(["-n", f"{name}@%h"] if name != "worker" else []),
            "-Q",
            ",".join(QUEUES),
        ]
        process = start_celery(argv, {**app_env(server), **worker_env(str(state_dir))})
        client = client_app(server)
        clients.append(client)
        probes = worker_probe_commands(str(state_dir), WORKER_HEARTBEAT_MAX_AGE_SECONDS)
        worker = Service(process, server, state_dir, probes, client)
        if wait_ready:
            worker.wait_for_startup()
        return worker

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def start_beat(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    start_celery: Callable[..., CeleryProcess],
    app_env: Callable[[Broker], dict[str, str]],
) -> Callable[..., Service]:
    """Factory: beat for the sample app, with the hooks as its ``-A`` target, by default started up."""

    def start(
        broker: Broker | None = None,
        wait_ready: bool = True,
        app: str = "sample_app",
        extra_args: Sequence[str] = (),
    ) -> Service:
        server = broker or redis_server()
        state_dir = tmp_path / "beat-state"
        argv = ["celery", *beat_args(str(state_dir), BEAT_MAX_INTERVAL_SECONDS), "--loglevel", "INFO", *extra_args]
        process = start_celery(argv, {**app_env(server), **beat_env(str(state_dir), app)})
        probes = beat_probe_commands(str(state_dir), BEAT_MAX_INTERVAL_SECONDS, BEAT_HEARTBEAT_MAX_AGE_SECONDS)
        beat = Service(process, server, state_dir, probes, client_app(server))
        if wait_ready:
            beat.wait_for_startup()
        return beat

    return start


@pytest.fixture
def kubelet(tmp_path: Path, redis_server: Callable[..., RedisServer]) -> Iterator[Callable[..., Kubelet]]:
    """Factory: ``kubelet(stack, overrides={}, broker=None)`` runs that render's pods as local processes.

    The rendered broker Service is mapped to ``broker`` (a new, started redis-server by default);
    Secret keys get valid test values (see ``tests/runtime/harness/translation.py``). Every pod is killed at the end.
    """
    from tests.runtime import harness

    made: list[Kubelet] = []

    def make(stack: str, overrides: Mapping[str, object] | None = None, broker: RedisServer | None = None) -> Kubelet:
        server = broker or redis_server()
        manifests = harness.Manifests(harness.render(stack, overrides))
        host, port = harness.broker_fqdn(manifests)
        cluster = harness.Cluster(
            manifests=manifests,
            secret_values=harness.test_secret_values(server.password, host, port),
            service_addresses={"redis": ("127.0.0.1", server.port)},
        )
        node = harness.Kubelet(manifests, cluster, tmp_path / f"kubelet-{len(made)}", broker=server)
        made.append(node)
        return node

    yield make
    for node in made:
        node.shutdown()
