"""A Redis Sentinel deployment as local processes: one primary, replicas and Sentinels, all with auth.

Real ``redis-server`` processes for the data nodes and real ``redis-sentinel`` processes (Debian's
redis-sentinel package; the same binary run in Sentinel mode) for the Sentinels, configured the way
the platform's ``broker.type: sentinel`` configures its pods:

* ``requirepass``/``masterauth`` on every data node, ``requirepass`` on every Sentinel, and the
  Sentinels authenticate to the data nodes (``auth-pass``) and to each other (``sentinel-pass``);
* ``min-replicas-to-write``/``min-replicas-max-lag`` on every data node (a promoted replica keeps
  the bound), ``maxmemory-policy noeviction``, AOF persistence;
* a quorum of 2 among 3 Sentinels. Detection is shortened (``down-after-milliseconds``), to keep
  the tier fast; production values come from the platform's config.

Killing the primary with SIGKILL is a node crash: no shutdown, no last replication flush.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

MASTER_NAME = "celery"
DOWN_AFTER_MILLISECONDS = 1000
FAILOVER_TIMEOUT_MILLISECONDS = 10000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # A missing tool fails the tier, never skips it; `make system-deps` installs both packages.
        raise RuntimeError(f"{name} is not installed; run `make system-deps` (apt: redis-server redis-sentinel)")
    return path


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.1)


@dataclass
class Node:
    """One redis-server or redis-sentinel process on a fixed port; it can be killed and started again."""

    role: str
    port: int
    workdir: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"{self.role}.log").open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

    def kill(self) -> None:
        """SIGKILL: what a node crash does; nothing is flushed to replicas or disk."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        path = self.workdir / f"{self.role}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Link:
    """A TCP proxy on a free port to ``127.0.0.1:target``: a replication link that can be cut.

    Once cut, whatever either side sends is read and dropped, as a network partition drops it;
    the connections stay open, so neither side notices before its own timeouts.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.is_cut = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        self.listener.listen(8)
        threading.Thread(target=self._accept, name=f"link-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not self.is_cut.is_set():
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                return
            if self.is_cut.is_set():
                continue
            try:
                sink.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        self.is_cut.set()

    def close(self) -> None:
        self.closed.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()


@dataclass
class SentinelCluster:
    """1 primary + ``replicas`` replicas + ``sentinels`` Sentinels on 127.0.0.1, with auth everywhere."""

    workdir: Path
    password: str
    sentinel_password: str
    replicas: int = 2
    sentinels: int = 3
    quorum: int = 2
    min_replicas_to_write: int = 1
    min_replicas_max_lag_seconds: int = 5
    master_name: str = MASTER_NAME
    replication_through_links: bool = False
    """Replicas reach the primary through :class:`Link` proxies, which :meth:`partition` can cut.

    Sentinel repoints a replica that follows another address than the master's once the failover
    timeout has passed: give such a cluster a failover timeout longer than the test."""
    failover_timeout_milliseconds: int = FAILOVER_TIMEOUT_MILLISECONDS
    data_nodes: list[Node] = field(default_factory=list)
    sentinel_nodes: list[Node] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports = [_free_port() for _ in range(1 + self.replicas)]
        for index, port in enumerate(ports):
            role = "primary" if index == 0 else f"replica-{index}"
            argv = self._data_argv(port, self.workdir / f"redis-{index}")
            if index:
                upstream = ports[0]
                if self.replication_through_links:
                    link = Link(ports[0])
                    self.links.append(link)
                    upstream = link.port
                argv += ["--replicaof", "127.0.0.1", str(upstream)]
            self.data_nodes.append(Node(role, port, self.workdir / f"redis-{index}", argv))
        for index in range(self.sentinels):
            port = _free_port()
            workdir = self.workdir / f"sentinel-{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            config = workdir / "sentinel.conf"  # Sentinel rewrites its config file: it must be writable
            config.write_text(self._sentinel_config(port, ports[0]))
            self.sentinel_nodes.append(
                Node(f"sentinel-{index}", port, workdir, [_binary("redis-sentinel"), str(config)])
            )

    # -- configuration --------------------------------------------------------------------------

    def _data_argv(self, port: int, workdir: Path) -> list[str]:
        return [
            _binary("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--requirepass",
            self.password,
            "--masterauth",
            self.password,
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--min-replicas-to-write",
            str(self.min_replicas_to_write),
            "--min-replicas-max-lag",
            str(self.min_replicas_max_lag_seconds),
        ]

    def _sentinel_config(self, port: int, primary_port: int) -> str:
        name = self.master_name
        return "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {self.workdir}",
                f"requirepass {self.sentinel_password}",
                f"sentinel sentinel-pass {self.sentinel_password}",
                f"sentinel monitor {name} 127.0.0.1 {primary_port} {self.quorum}",
                f"sentinel auth-pass {name} {self.password}",
                f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MILLISECONDS}",
                f"sentinel failover-timeout {name} {self.failover_timeout_milliseconds}",
                f"sentinel parallel-syncs {name} 1",
                "",
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SentinelCluster:
        for link in self.links:
            link.start()
        for node in self.data_nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.start()
        for node in self.sentinel_nodes:
            node.start()
        primary = self.data_nodes[0]
        _wait(lambda: self.node_client(primary).ping(), 10, f"the primary answers on {primary.port}")
        _wait(
            lambda: self.good_replicas(primary) == self.replicas,
            20,
            "every replica is connected to the primary and has acknowledged (min-replicas-to-write counts it)",
        )
        # Every Sentinel knows the primary, every replica and every other Sentinel: failover can run.
        for node in self.sentinel_nodes:
            _wait(lambda node=node: self._sentinel_sees_everyone(node), 30, f"{node.role} sees the deployment")
        return self

    def _sentinel_sees_everyone(self, node: Node) -> bool:
        client = redis.Redis(host="127.0.0.1", port=node.port, password=self.sentinel_password)
        try:
            replicas = client.sentinel_slaves(self.master_name)
            others = client.sentinel_sentinels(self.master_name)
            return len(replicas) == self.replicas and len(others) == self.sentinels - 1
        finally:
            client.close()

    def shutdown(self) -> None:
        for node in [*self.sentinel_nodes, *self.data_nodes]:
            node.kill()
        for link in self.links:
            link.close()

    def partition(self) -> None:
        """Cut every replica off the primary: bytes in flight and from now on are dropped, both ways."""
        for link in self.links:
            link.cut()

    # -- addresses and clients ----------------------------------------------------------------

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.sentinel_nodes]

    def url(self, db: int = 0) -> str:
        """The Celery/kombu broker URL: every Sentinel, ``;``-separated; the password is the data nodes'."""
        return ";".join(f"sentinel://:{self.password}@{host}:{port}/{db}" for host, port in self.sentinel_addresses)

    def extra_env(self) -> dict[str, str]:
        """The env the platform gives a Sentinel client beside CELERY_BROKER_URL (read by the hooks module)."""
        return {
            "CELERY_BROKER_SENTINEL_MASTER": self.master_name,
            "CELERY_BROKER_SENTINEL_PASSWORD": self.sentinel_password,
        }

    def transport_options(self) -> dict[str, Any]:
        """What Celery needs next to the URL: the master's name and the Sentinels' own password."""
        return {"master_name": self.master_name, "sentinel_kwargs": {"password": self.sentinel_password}}

    def sentinel(self) -> Sentinel:
        return Sentinel(
            self.sentinel_addresses,
            sentinel_kwargs={"password": self.sentinel_password, "socket_timeout": 1},
            password=self.password,
            socket_timeout=2,
        )

    def client(self, db: int = 0) -> redis.Redis:
        """A client of whichever node Sentinel currently names as the master."""
        return self.sentinel().master_for(self.master_name, db=db)

    def node_client(self, node: Node) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, password=self.password, socket_timeout=2)

    def good_replicas(self, node: Node) -> int:
        """Replicas that ``node`` counts for ``min-replicas-to-write``: acknowledged within the max lag."""
        return int(self.node_client(node).info("replication").get("min_slaves_good_slaves", 0))

    def master_port(self) -> int:
        """The master's port, by a majority of Sentinels that answer (raises while they disagree)."""
        answers = []
        for host, port in self.sentinel_addresses:
            try:
                client = redis.Redis(host=host, port=port, password=self.sentinel_password, socket_timeout=1)
                answer = client.sentinel_get_master_addr_by_name(self.master_name)
                client.close()
            except redis.RedisError:
                continue
            if answer:
                answers.append(int(answer[1]))
        best = max(set(answers), key=answers.count) if answers else None
        if best is None or answers.count(best) < self.quorum:
            raise RuntimeError(f"the Sentinels do not agree on a master: {answers}")
        return best

    def master(self) -> Node:
        port = self.master_port()
        return next(node for node in self.data_nodes if node.port == port)

    def wait_for_new_master(self, old: Node, timeout: float = 30) -> Node:
        """Wait until the Sentinels name another node master, and that node really is one and takes writes."""

        def promoted() -> bool:
            port = self.master_port()
            if port == old.port:
                return False
            node = next(n for n in self.data_nodes if n.port == port)
            return self.node_client(node).info("replication")["role"] == "master"

        _wait(promoted, timeout, "Sentinel has promoted a replica")
        return self.master()

    def logs(self) -> str:
        return "\n".join(f"==> {n.role}\n{n.log()[-3000:]}" for n in [*self.data_nodes, *self.sentinel_nodes])
