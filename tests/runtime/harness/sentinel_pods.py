"""Our own Redis+Sentinel pods as local processes: the containers of ``builders.sentinel_pods``, run as built.

Each pod runs its container's command and args (``sh -c SCRIPT name args``) with its env, and its exec
probes with the same env. :func:`local_container` makes only the stand-ins that a cluster provides:
Secret keys get test values, ``fieldRef: metadata.name`` the pod's name, ``$(VAR)`` is expanded as
the kubelet does; each pod's stable DNS name (``<pod>.<headless svc>...:<port>``) becomes
127.0.0.1 with a port of its own (what DNS does in a cluster), and mount paths become directories.
A pod's emptyDir
(``CONF_DIR``) is a directory that a pod deletion empties and a container restart keeps; a data
node's ``--dir`` is its persistent volume, kept across everything.

``PATH`` starts with a spy directory: ``redis-cli``, ``redis-server`` and ``timeout`` there append
their argv to a file and exec the real binary (it runs unchanged), so a test sees every command line
the scripts ever ran, not only the processes alive at one ``ps``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

SPIED = ("redis-cli", "redis-server", "timeout")


def binary(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        # A missing tool fails the tier, never skips it; `make system-deps` installs the packages.
        raise RuntimeError(f"{name} is not installed; run `make system-deps` (apt: redis-server redis-sentinel)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_spy_dir(directory: Path, argv_log: Path) -> Path:
    """Wrappers that log their argv to ``argv_log``, then exec the real binary with the same argv."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SPIED:
        wrapper = directory / name
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "{argv_log}"\nexec {binary(name)} "$@"\n')
        wrapper.chmod(0o755)
    return directory


def command(client: redis.Redis, *args: object) -> Any:
    """``execute_command``, typed (redis-py leaves it untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def known_sentinels(client: redis.Redis, master_name: str) -> list[dict[str, Any]]:
    """``SENTINEL SENTINELS``: the other Sentinels this one knows, as dicts."""
    return cast(list[dict[str, Any]], client.sentinel_sentinels(master_name))


def known_replicas(client: redis.Redis, master_name: str) -> list[dict[str, Any]]:
    """``SENTINEL REPLICAS``: the replicas this Sentinel knows, as dicts."""
    return client.sentinel_slaves(master_name)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, why: Callable[[], str] = str) -> None:
    """Poll until ``predicate`` is true (Redis errors count as false); raise with ``why()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}\n{why()}")
        time.sleep(0.05)


@dataclass
class ScriptPod:
    """One container of the Redis or Sentinel StatefulSet: argv, env, probes, an emptyDir."""

    name: str
    port: int
    argv: list[str]
    env: dict[str, str]
    probes: dict[str, list[str]]
    workdir: Path
    conf_dir: Path
    pre_stop: list[str] | None = None
    """The container's preStop exec command, as rendered (None: the container has none)."""
    grace_seconds: float = 30
    """The pod's terminationGracePeriodSeconds, as rendered."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, new_pod: bool = False) -> None:
        """Start the container; ``new_pod`` empties its emptyDir first (a deleted and recreated pod)."""
        assert not self.running(), f"{self.name} is already running"
        if new_pod and self.conf_dir.exists():
            shutil.rmtree(self.conf_dir)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is flushed to replicas, the AOF keeps what was written to it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM, as a process restart sends it (no preStop hook); SIGKILL after the grace period."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def terminate(self, run_pre_stop: bool = True) -> float:
        """Delete the pod as the kubelet does: the preStop hook (in the container's env), then SIGTERM, within
        one grace period; SIGKILL when it runs out. The hook's output goes to the pod's log. Returns the
        seconds the hook took (0 without one)."""
        started = time.monotonic()
        if run_pre_stop and self.pre_stop is not None and self.running():
            with self.log_path.open("ab") as log:
                log.write(b"--- preStop ---\n")
                log.flush()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    subprocess.run(
                        self.pre_stop, env=self.env, stdout=log, stderr=subprocess.STDOUT, timeout=self.grace_seconds
                    )
                log.write(b"--- preStop done ---\n")
        hook_seconds = time.monotonic() - started
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:  # the kubelet grants at least 2 s after a hook that used the whole period
                self.process.wait(timeout=max(self.grace_seconds - hook_seconds, 2))
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
        return hook_seconds

    def last_pre_stop_log(self) -> str:
        """What the last preStop hook printed ('' when none ran)."""
        log = self.log()
        if "--- preStop ---" not in log:
            return ""
        return log.rsplit("--- preStop ---", 1)[1].split("--- preStop done ---", 1)[0]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def last_start_log(self) -> str:
        return self.log().rsplit("--- start ", 1)[-1]

    def probe(self, kind: str) -> int:
        """Run the ``kind`` exec probe in the container's env, as the kubelet does: its exit code."""
        try:
            return subprocess.run(
                self.probes[kind], env=self.env, capture_output=True, timeout=5, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            return -1


@dataclass
class Deployment:
    """``nodes`` data-node pods (node 0 first) and ``sentinels`` Sentinel pods, with both passwords."""

    nodes: list[ScriptPod]
    sentinels: list[ScriptPod]
    password: str
    sentinel_password: str
    master_name: str
    argv_log: Path
    clients: list[redis.Redis] = field(default_factory=list)

    # -- clients ------------------------------------------------------------------------------------

    def node_client(self, pod: ScriptPod) -> redis.Redis:
        client = redis.Redis(host="127.0.0.1", port=pod.port, password=self.password, socket_timeout=2)
        self.clients.append(client)
        return client

    def sentinel_client(self, pod: ScriptPod) -> redis.Redis:
        client = redis.Redis(
            host="127.0.0.1", port=pod.port, password=self.sentinel_password, socket_timeout=2, decode_responses=True
        )
        self.clients.append(client)
        return client

    def role(self, pod: ScriptPod) -> list[Any]:
        """ROLE of a data node, decoded: ``["master", offset, [...]]`` or ``["slave", host, port, state, offset]``."""
        answer = command(self.node_client(pod), "ROLE")
        return [a.decode() if isinstance(a, bytes) else a for a in answer]

    def replication(self, pod: ScriptPod) -> dict[str, Any]:
        return dict(self.node_client(pod).info("replication"))

    def named_master(self, sentinel: ScriptPod) -> str | None:
        """What one Sentinel answers to ``get-master-addr-by-name``, as host:port."""
        answer = command(self.sentinel_client(sentinel), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return f"{answer[0]}:{answer[1]}" if answer else None

    def sentinel_state(self, sentinel: ScriptPod) -> dict[str, Any]:
        return cast(dict[str, Any], self.sentinel_client(sentinel).sentinel_master(self.master_name))

    def sentinel_set(self, option: str, value: object) -> None:
        """``SENTINEL SET`` on every running Sentinel (a runtime change, as an operator would make it)."""
        for sentinel in self.sentinels:
            if sentinel.running():
                command(self.sentinel_client(sentinel), "SENTINEL", "SET", self.master_name, option, str(value))

    def by_address(self, address: str) -> ScriptPod:
        return next(p for p in self.nodes if p.address == address)

    # -- state ----------------------------------------------------------------------------------------

    def masters(self) -> list[ScriptPod]:
        """Every running data node that answers ROLE as master."""
        found = []
        for pod in self.nodes:
            if pod.running():
                try:
                    if self.role(pod)[0] == "master":
                        found.append(pod)
                except redis.RedisError:
                    pass
        return found

    def healthy(self) -> ScriptPod | None:
        """The master, when the whole set is healthy (see :meth:`why_unhealthy`); else None."""
        return None if self.why_unhealthy() else self.masters()[0]

    def why_unhealthy(self) -> str:
        """What keeps the set from being healthy; empty when it is.

        Healthy: every pod runs; exactly one node answers ROLE master; every other node is its replica
        with the link up; every Sentinel names it, holds it up (flags ``master``), and sees every
        replica up and every other Sentinel.
        """
        stopped = [p.name for p in [*self.nodes, *self.sentinels] if not p.running()]
        if stopped:
            return f"not running: {stopped}"
        masters = self.masters()
        if len(masters) != 1:
            return f"masters by ROLE: {[m.name for m in masters]}"
        master = masters[0]
        for pod in self.nodes:
            if pod is not master:
                info = self.replication(pod)
                if (info.get("role"), info.get("master_port")) != ("slave", master.port):
                    return f"{pod.name} is not a replica of {master.name}: {info}"
                if info.get("master_link_status") != "up":
                    return f"{pod.name}: master link {info.get('master_link_status')}"
        for sentinel in self.sentinels:
            client = self.sentinel_client(sentinel)
            named, flags = self.named_master(sentinel), self.sentinel_state(sentinel)["flags"]
            if (named, flags) != (master.address, "master"):
                return f"{sentinel.name} names {named} with flags {flags}, not {master.address}"
            replicas = {r["name"]: r["flags"] for r in known_replicas(client, self.master_name)}
            if len(replicas) != len(self.nodes) - 1 or set(replicas.values()) != {"slave"}:
                return f"{sentinel.name} sees replicas {replicas}"
            others = len(known_sentinels(client, self.master_name))
            if others != len(self.sentinels) - 1:
                return f"{sentinel.name} sees {others} other Sentinels"
        return ""

    def wait_healthy(self, timeout: float = 30) -> ScriptPod:
        last = [""]

        def check() -> bool:
            last[0] = self.why_unhealthy()
            return not last[0]

        wait_for(check, timeout, "the whole set is healthy", lambda: f"last: {last[0]}\n{self.describe()}")
        return self.masters()[0]

    def promoted_other_than(self, old: ScriptPod) -> ScriptPod | None:
        """The node every running Sentinel names, when it is not ``old`` and answers ROLE master."""
        named = {self.named_master(s) for s in self.sentinels if s.running()}
        if len(named) != 1 or None in named:
            return None
        address = named.pop()
        if address == old.address or address is None:
            return None
        pod = self.by_address(address)
        return pod if self.role(pod)[0] == "master" else None

    def spied_argv(self) -> list[str]:
        return self.argv_log.read_text().splitlines() if self.argv_log.exists() else []

    def describe(self) -> str:
        lines = []
        for pod in [*self.nodes, *self.sentinels]:
            lines.append(f"==> {pod.name} ({pod.address}, running={pod.running()})\n{pod.log()[-2500:]}")
        return "\n".join(lines)

    def shutdown(self) -> None:
        for client in self.clients:
            client.close()
        for pod in [*self.sentinels, *self.nodes]:
            pod.kill()


def start_all(pods: Sequence[ScriptPod], new_pod: bool = True) -> None:
    """Start pods at the same moment, as a StatefulSet with ``podManagementPolicy: Parallel`` does."""
    threads = [threading.Thread(target=p.start, kwargs={"new_pod": new_pod}) for p in pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _expand(value: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: from the variables defined so far; ``$$`` escapes; unknown stays."""

    def sub(match: re.Match[str]) -> str:
        return "$" if match.group(0) == "$$" else env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def local_container(
    container: Mapping[str, Any],
    pod_name: str,
    secrets: Mapping[str, str],
    addresses: Mapping[str, str],
    paths: Mapping[str, Path],
    spy_dir: Path,
) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Return a rendered container's argv, env and exec probes (by kind), with the cluster's stand-ins.

    ``addresses`` maps each stable ``host:port`` to its local ``127.0.0.1:port``; ``paths`` maps each
    mount path to a local directory. A Secret key without a test value raises, as the kubelet refuses.
    """

    def local(text: str) -> str:
        for stable in sorted(addresses, key=len, reverse=True):
            text = text.replace(stable, addresses[stable])
        return str(paths[text]) if text in paths else text

    env: dict[str, str] = {}
    for entry in container.get("env", []):
        source = entry.get("valueFrom")
        if source is None:
            env[entry["name"]] = _expand(str(entry["value"]), env)
        elif "secretKeyRef" in source:
            env[entry["name"]] = secrets[source["secretKeyRef"]["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[entry["name"]] = pod_name
        else:
            raise AssertionError(f"no stand-in for {entry}")
    env = {name: value if name.endswith("PASSWORD") else local(value) for name, value in env.items()}
    argv = [local(_expand(a, env)) for a in [*container.get("command", []), *container.get("args", [])]]
    probes = {
        kind.removesuffix("Probe"): list(container[kind]["exec"]["command"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    return argv, {"PATH": f"{spy_dir}:/usr/bin:/bin", "LANG": "C.UTF-8", **env}, probes


__all__ = [
    "Deployment",
    "ScriptPod",
    "binary",
    "command",
    "free_port",
    "known_replicas",
    "known_sentinels",
    "local_container",
    "make_spy_dir",
    "start_all",
    "wait_for",
]
