"""The broker of the Celery-level Sentinel scenarios: our own pods (``builders.sentinel_pods``), run as rendered.

There is one home for the broker's config: the render. :func:`rendered_deployment` builds the data-node
and Sentinel containers from a :class:`SentinelSpec` and runs them through ``harness.sentinel_pods``
(command, args, env, probes, preStop hook and grace period as built; only DNS, Secrets and paths
stood in). A scenario that needs another setting (a short ``down-after``, a lag) passes another spec.
:class:`SentinelCluster` adds what Celery scenarios use: the ``sentinel://`` URL, the client env and
transport options, the master by the Sentinels' majority, and replication links that can be cut.

Killing a node with SIGKILL is a node crash: no shutdown, no last replication flush.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from celery_platform.builders import secret_keys
from celery_platform.builders import sentinel_pods as pods
from celery_platform.builders.sentinel_pods import SentinelNames
from celery_platform.builders.workloads import REDIS_DATA
from celery_platform.config.sentinel import SentinelSpec
from celery_platform.config.specs import RedisSpec
from tests.runtime.harness.sentinel_pods import (
    Deployment,
    ScriptPod,
    binary,
    free_port,
    known_replicas,
    known_sentinels,
    local_container,
    make_spy_dir,
    start_all,
    wait_for,
)

NAMESPACE, DOMAIN = "celery", "cluster.local"
#: Test speed only, after the rendered args: a replica's sync starts at once; the nodes listen on loopback.
FAST_SYNC_ARGS = ["--repl-diskless-sync-delay", "0", "--bind", "127.0.0.1"]
#: The rendered args alone (Redis' own 5 s diskless-sync delay), listening on loopback.
AS_RENDERED_ARGS = ["--bind", "127.0.0.1"]
#: The Celery scenarios' Sentinels: detection at the schema's minimum (1 s), to keep the tier fast; a 5 s lag.
SCENARIO_SPEC = SentinelSpec(
    replicas=2,
    sentinels=3,
    down_after_milliseconds=1000,
    failover_timeout_milliseconds=10000,
    min_replicas_max_lag_seconds=5,
)


def rendered_deployment(
    root: Path,
    spec: SentinelSpec,
    password: str,
    sentinel_password: str,
    *,
    node_args: list[str] = FAST_SYNC_ARGS,
    pre_stop: bool = True,
    links: list[Link] | None = None,
) -> Deployment:
    """The rendered data-node and Sentinel containers of ``spec`` as local pods (not started).

    ``pre_stop=False`` drops the data node's preStop hook (the comparison that shows what it does).
    ``links`` (one per replica) become each replica's address for node 0's stable name (what its DNS
    answers), each a :class:`Link` to node 0: its replication stream takes a path that can be cut.
    """
    for tool in ("redis-server", "redis-cli", "timeout", "sh"):
        binary(tool)
    argv_log = root / "argv.log"
    spy_dir = make_spy_dir(root / "spy", argv_log)
    secrets = {secret_keys.REDIS_PASSWORD: password, secret_keys.SENTINEL_PASSWORD: sentinel_password}
    names = SentinelNames("redis")
    nodes = pods.node_addresses(names, spec, NAMESPACE, DOMAIN)
    sentinels = pods.sentinel_addresses(names, spec, NAMESPACE, DOMAIN)
    addresses = {stable: f"127.0.0.1:{free_port()}" for stable in [*nodes, *sentinels]}
    for link in links or []:
        link.target = int(addresses[nodes[0]].rsplit(":", 1)[1])
    refs = pods.SentinelPodRefs(
        secret_name="celery-secrets",
        node_domain=pods.pod_domain(names.nodes_headless, NAMESPACE, DOMAIN),
        sentinel_domain=pods.pod_domain(names.sentinels_headless, NAMESPACE, DOMAIN),
        nodes=" ".join(nodes),
        sentinels=" ".join(sentinels),
    )
    redis_spec = RedisSpec(persistent=True)

    def pod(kind: str, index: int, stable: str, pod_spec: dict[str, Any], extra_args: list[str]) -> ScriptPod:
        container = pod_spec["containers"][0]
        workdir = root / f"{kind}-{index}"
        paths = {pods.CONF_DIR: workdir / "conf", REDIS_DATA: workdir / "data"}
        paths[REDIS_DATA].mkdir(parents=True)
        view = dict(addresses)
        if kind == "node" and index and links:
            view[nodes[0]] = f"127.0.0.1:{links[index - 1].port}"
        argv, env, probes = local_container(container, stable.split(".")[0], secrets, view, paths, spy_dir)
        hook = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        return ScriptPod(
            f"{kind}-{index}",
            int(addresses[stable].rsplit(":", 1)[1]),
            [*argv, *extra_args],
            env,
            probes,
            workdir,
            paths[pods.CONF_DIR],
            pre_stop=list(hook) if hook and pre_stop else None,
            grace_seconds=float(pod_spec["terminationGracePeriodSeconds"]),
        )

    node_spec = pods.node_pod_spec(redis_spec, spec, refs, names)
    sentinel_spec = pods.sentinel_pod_spec(redis_spec, spec, refs, names)
    return Deployment(
        nodes=[pod("node", i, a, node_spec, node_args) for i, a in enumerate(nodes)],
        sentinels=[pod("sentinel", i, a, sentinel_spec, []) for i, a in enumerate(sentinels)],
        password=password,
        sentinel_password=sentinel_password,
        master_name=spec.master_name,
        argv_log=argv_log,
    )


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
    """Our rendered Redis+Sentinel pods on 127.0.0.1 (node 0 master at first start), with auth everywhere."""

    workdir: Path
    password: str
    sentinel_password: str
    spec: SentinelSpec = SCENARIO_SPEC
    replication_through_links: bool = False
    """Replicas reach node 0 through :class:`Link` proxies (their DNS view of it), which :meth:`partition`
    cuts. Sentinel repoints a replica that follows another address than the master's once the failover
    timeout has passed: give such a cluster a spec whose failover timeout outlasts the test."""
    pre_stop: bool = True
    """Run the data nodes with their rendered preStop hook (False: the same pods without it)."""
    node_args: list[str] = field(default_factory=lambda: list(FAST_SYNC_ARGS))
    links: list[Link] = field(default_factory=list)
    pods: Deployment = field(init=False)

    def __post_init__(self) -> None:
        if self.replication_through_links:
            self.links = [Link(0) for _ in range(self.spec.replicas)]  # each aimed at node 0 by the render below
        self.pods = rendered_deployment(
            self.workdir,
            self.spec,
            self.password,
            self.sentinel_password,
            node_args=self.node_args,
            pre_stop=self.pre_stop,
            links=self.links or None,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SentinelCluster:
        """Start the data nodes, then the Sentinels once the replicas are synced; wait for a healthy set."""
        for link in self.links:
            link.start()
        start_all(self.pods.nodes)
        node_0 = self.pods.nodes[0]
        wait_for(
            lambda: self.good_replicas(node_0) == len(self.pods.nodes) - 1,
            30,
            "every replica is synced with node 0 (min-replicas-to-write counts it)",
            self.logs,
        )
        start_all(self.pods.sentinels)
        if not self.links:
            self.pods.wait_healthy(60)
            return self
        # Replicas through links follow the links' address, which the full health check does not accept.
        wait_for(self._sentinels_see_everyone, 60, "every Sentinel sees node 0, its replicas and its peers", self.logs)
        return self

    def _sentinels_see_everyone(self) -> bool:
        for sentinel in self.pods.sentinels:
            client = self.pods.sentinel_client(sentinel)
            if self.pods.named_master(sentinel) != self.pods.nodes[0].address:
                return False
            replicas = known_replicas(client, self.master_name)
            if (
                len(replicas) != self.spec.replicas
                or len(known_sentinels(client, self.master_name)) != len(self.pods.sentinels) - 1
            ):
                return False
        return True

    def shutdown(self) -> None:
        self.pods.shutdown()
        for link in self.links:
            link.close()

    def partition(self) -> None:
        """Cut every replica off node 0: bytes in flight and from now on are dropped, both ways."""
        for link in self.links:
            link.cut()

    # -- settings, addresses and clients ------------------------------------------------------------

    @property
    def master_name(self) -> str:
        return self.spec.master_name

    @property
    def quorum(self) -> int:
        return self.spec.effective_quorum()

    @property
    def min_replicas_max_lag_seconds(self) -> int:
        return self.spec.min_replicas_max_lag_seconds

    @property
    def replicas(self) -> int:
        return self.spec.replicas

    @property
    def data_nodes(self) -> list[ScriptPod]:
        return self.pods.nodes

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", pod.port) for pod in self.pods.sentinels]

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

    def node_client(self, node: ScriptPod) -> redis.Redis:
        return self.pods.node_client(node)

    def good_replicas(self, node: ScriptPod) -> int:
        """Replicas that ``node`` counts for ``min-replicas-to-write``: acknowledged within the max lag."""
        return int(self.node_client(node).info("replication").get("min_slaves_good_slaves", 0))

    def master_port(self) -> int:
        """The master's port, by a majority of Sentinels that answer (raises while they disagree)."""
        answers = []
        for sentinel in self.pods.sentinels:
            if not sentinel.running():
                continue
            try:
                named = self.pods.named_master(sentinel)
            except redis.RedisError:
                continue
            if named:
                answers.append(int(named.rsplit(":", 1)[1]))
        best = max(set(answers), key=answers.count) if answers else None
        if best is None or answers.count(best) < self.quorum:
            raise RuntimeError(f"the Sentinels do not agree on a master: {answers}")
        return best

    def master(self) -> ScriptPod:
        port = self.master_port()
        return next(node for node in self.pods.nodes if node.port == port)

    def wait_for_new_master(self, old: ScriptPod, timeout: float = 30) -> ScriptPod:
        """Wait until the Sentinels name another node master, and that node really is one."""

        def promoted() -> bool:
            port = self.master_port()
            if port == old.port:
                return False
            node = next(n for n in self.pods.nodes if n.port == port)
            return self.node_client(node).info("replication")["role"] == "master"

        wait_for(promoted, timeout, "Sentinel has promoted a replica", self.logs)
        return self.master()

    def logs(self) -> str:
        return self.pods.describe()
