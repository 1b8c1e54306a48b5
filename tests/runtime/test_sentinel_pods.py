"""Our own Redis+Sentinel pods, proven with real processes: start scripts, failover, restarts and probes.

Three data nodes and three Sentinels (quorum 2, down-after 1 s) run the start scripts of
``celery_platform.builders.sentinel_scripts`` exactly as their containers do: ``sh -c SCRIPT name
args`` with the env contract, each on 127.0.0.1 with its own port. Every test starts from a healthy
set (one master, its replicas synced, every Sentinel agreeing) and leaves one behind, so the tests do
not depend on their order; one set serves the module.

Measured figures (promotion seconds) are printed (``-s``); nothing here asserts a duration.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_platform.builders import sentinel_scripts as scripts
from tests.runtime.harness.sentinel_pods import (
    Deployment,
    ScriptPod,
    binary,
    make_spy_dir,
    pod_env,
    start_all,
    wait_for,
)
from tests.runtime.conftest import free_port

# Quotes, a backslash and a space: the config files must quote them, and no command line may show them.
REDIS_PASSWORD = 'r3dis "Pa55" w\\0rd'
SENTINEL_PASSWORD = "s3ntinel 'Pa55' w0rd"
MASTER_NAME = "celery"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
QUORUM = 2


def _deployment(root: Path) -> Deployment:
    for tool in ("redis-server", "redis-cli", "timeout", "sh"):
        binary(tool)
    argv_log = root / "argv.log"
    spy_dir = make_spy_dir(root / "spy", argv_log)
    node_ports = [free_port() for _ in range(3)]
    sentinel_ports = [free_port() for _ in range(3)]
    common = {
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        "SENTINEL_MASTER": MASTER_NAME,
        "REDIS_NODES": " ".join(f"127.0.0.1:{p}" for p in node_ports),
        "SENTINELS": " ".join(f"127.0.0.1:{p}" for p in sentinel_ports),
    }
    nodes = []
    for index, port in enumerate(node_ports):
        workdir = root / f"node-{index}"
        data = workdir / "data"
        data.mkdir(parents=True)
        options = ["--dir", str(data), "--bind", "127.0.0.1", "--appendonly", "yes", "--save", ""]
        options += ["--maxmemory-policy", "noeviction", "--min-replicas-to-write", "1", "--min-replicas-max-lag", "5"]
        options += ["--repl-diskless-sync-delay", "0"]  # test speed only: a replica's sync starts at once
        env = {**common, "CONF_DIR": str(workdir / "conf"), "REDIS_SELF": f"127.0.0.1:{port}"}
        nodes.append(
            ScriptPod(
                name=f"node-{index}",
                port=port,
                argv=["sh", "-c", scripts.REDIS_NODE_SCRIPT, "redis-node", *options],
                env=pod_env(env, spy_dir),
                probes={"readiness": scripts.REDIS_NODE_PROBE, "liveness": scripts.REDIS_NODE_LIVENESS_PROBE},
                workdir=workdir,
                conf_dir=workdir / "conf",
            )
        )
    sentinels = []
    for index, port in enumerate(sentinel_ports):
        workdir = root / f"sentinel-{index}"
        workdir.mkdir(parents=True)
        env = {
            **common,
            "CONF_DIR": str(workdir / "conf"),
            "SENTINEL_SELF": f"127.0.0.1:{port}",
            "SENTINEL_QUORUM": str(QUORUM),
            "SENTINEL_DOWN_AFTER_MS": str(DOWN_AFTER_MS),
            "SENTINEL_FAILOVER_TIMEOUT_MS": str(FAILOVER_TIMEOUT_MS),
        }
        sentinels.append(
            ScriptPod(
                name=f"sentinel-{index}",
                port=port,
                argv=["sh", "-c", scripts.SENTINEL_SCRIPT, "sentinel"],
                env=pod_env(env, spy_dir),
                probes={"readiness": scripts.SENTINEL_PROBE, "liveness": scripts.SENTINEL_LIVENESS_PROBE},
                workdir=workdir,
                conf_dir=workdir / "conf",
            )
        )
    return Deployment(
        nodes=nodes,
        sentinels=sentinels,
        password=REDIS_PASSWORD,
        sentinel_password=SENTINEL_PASSWORD,
        master_name=MASTER_NAME,
        argv_log=argv_log,
        down_after_ms=DOWN_AFTER_MS,
        failover_timeout_ms=FAILOVER_TIMEOUT_MS,
        quorum=QUORUM,
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The first start of the whole set: every pod at once, as a Parallel StatefulSet starts them."""
    made = _deployment(tmp_path_factory.mktemp("sentinel-pods"))
    start_all([*made.nodes, *made.sentinels])
    try:
        yield made
    finally:
        made.shutdown()


@pytest.fixture
def healthy(deployment: Deployment) -> ScriptPod:
    """The current master of a healthy set (every test starts from one)."""
    return deployment.wait_healthy()


def master_elsewhere_than_node_0(deployment: Deployment, master: ScriptPod) -> ScriptPod:
    """Make another node than node 0 the master, so that no ordinal guess can pass.

    A crash and its failover, not ``SENTINEL FAILOVER``: after a forced failover the old master stays
    a master until a Sentinel's next INFO (10 s) converts it.
    """
    if master is not deployment.nodes[0]:
        return master
    promoted, _ = kill_and_wait_for_promotion(deployment, master)
    master.start(new_pod=True)
    assert deployment.wait_healthy() is promoted
    return promoted


def write_and_replicate(deployment: Deployment, master: ScriptPod, prefix: str, count: int = 50) -> dict[str, bytes]:
    """Write ``count`` keys on the master and wait (WAIT) until every replica has acknowledged them."""
    client = deployment.node_client(master)
    values = {f"{prefix}:{n}": f"value-{n}".encode() for n in range(count)}
    client.mset(values)
    replicas = len(deployment.nodes) - 1
    assert client.execute_command("WAIT", replicas, 5000) == replicas
    return values


def kill_and_wait_for_promotion(deployment: Deployment, master: ScriptPod) -> tuple[ScriptPod, float]:
    killed_at = time.monotonic()
    master.kill()
    wait_for(lambda: deployment.promoted_other_than(master), 30, "Sentinel promoted a replica", deployment.describe)
    promoted = deployment.promoted_other_than(master)
    assert promoted is not None
    return promoted, time.monotonic() - killed_at


def test_first_start_makes_node_0_master_every_other_node_its_replica_and_every_sentinel_monitors_it(
    deployment: Deployment,
) -> None:
    # Module scope: under xdist another test may already have moved the master; the first start's
    # own record is each pod's first log, which says what it decided and why.
    deployment.wait_healthy()
    first = {p.name: p.log().split("--- start 2 ---")[0] for p in [*deployment.nodes, *deployment.sentinels]}
    assert "starting as master (" in first["node-0"], first["node-0"]
    node_0 = deployment.nodes[0].address
    for name in ("node-1", "node-2"):
        assert f"starting as replica of {node_0} " in first[name], first[name]
    for index in range(3):
        assert f"monitoring {MASTER_NAME} at {node_0} " in first[f"sentinel-{index}"], first[f"sentinel-{index}"]


def test_writes_to_the_master_reach_every_replica_and_every_probe_passes(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    values = write_and_replicate(deployment, healthy, "replicated")
    for pod in deployment.nodes:
        assert deployment.node_client(pod).mget(list(values)) == list(values.values()), pod.name
    for pod in [*deployment.nodes, *deployment.sentinels]:
        assert (pod.probe("readiness"), pod.probe("liveness")) == (0, 0), pod.name
    for sentinel in deployment.sentinels:
        assert deployment.sentinel_client(sentinel).execute_command("SENTINEL", "CKQUORUM", MASTER_NAME).startswith("OK")


def test_a_master_back_within_down_after_stays_master_with_its_data_and_no_failover_happens(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    """The decision for a crashed master back before the Sentinels hold it down: it is still the master."""
    epoch = deployment.sentinel_state(deployment.sentinels[0])["config-epoch"]
    deployment.sentinel_set("down-after-milliseconds", 30000)  # room for the restart, on a slow CI machine
    try:
        values = write_and_replicate(deployment, healthy, "fast-restart")
        healthy.kill()
        healthy.start()
        wait_for(lambda: deployment.role(healthy)[0] == "master", 20, "the old master answers", deployment.describe)
        assert "starting as master (named-by-sentinels)" in healthy.last_start_log(), healthy.last_start_log()
        assert deployment.node_client(healthy).mget(list(values)) == list(values.values())  # its AOF
        assert deployment.wait_healthy() is healthy
        assert deployment.sentinel_state(deployment.sentinels[0])["config-epoch"] == epoch  # no failover
    finally:
        deployment.sentinel_set("down-after-milliseconds", DOWN_AFTER_MS)


def test_sigkill_of_the_master_promotes_a_replica_and_the_old_master_returns_as_its_replica_with_the_same_data(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    values = write_and_replicate(deployment, healthy, "failover")
    promoted, seconds = kill_and_wait_for_promotion(deployment, healthy)
    print(f"\npromotion after SIGKILL of {healthy.name}: {promoted.name} after {seconds:.2f} s")
    assert deployment.node_client(promoted).mget(list(values)) == list(values.values())
    healthy.start(new_pod=True)  # a new pod: empty emptyDir, same volume
    assert deployment.wait_healthy() is promoted
    assert f"starting as replica of {promoted.address} (named-by-sentinels)" in healthy.last_start_log()
    more = write_and_replicate(deployment, promoted, "after-failover")
    for pod in deployment.nodes:
        client = deployment.node_client(pod)
        assert client.mget([*values, *more]) == [*values.values(), *more.values()], pod.name
        assert client.dbsize() == deployment.node_client(promoted).dbsize(), pod.name


def test_node_0_restarting_as_a_replica_follows_the_elected_master_not_its_ordinal(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    master = master_elsewhere_than_node_0(deployment, healthy)
    node_0 = deployment.nodes[0]
    node_0.kill()
    node_0.start(new_pod=True)
    assert deployment.wait_healthy() is master
    assert f"starting as replica of {master.address} (named-by-sentinels)" in node_0.last_start_log()


def test_a_master_restarting_while_the_sentinels_hold_it_down_waits_and_then_follows_their_choice(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    """Split brain refused: no port opens while a failover of this node may run; then it replicates the winner.

    A quorum above the number of Sentinels holds the failover back (``s_down`` without ``o_down``), so
    the dead master is held down for as long as the test needs; lowering it lets the failover run.
    Meanwhile the probes fail where they should: the dead node's, every replica's readiness (no
    master), every Sentinel's readiness (its master is down); liveness passes where the process runs.
    """
    deployment.sentinel_set("quorum", len(deployment.sentinels) + 1)
    try:
        old = healthy
        old.kill()
        wait_for(
            lambda: all("s_down" in deployment.sentinel_state(s)["flags"] for s in deployment.sentinels),
            20,
            "every Sentinel holds the master down",
            deployment.describe,
        )
        assert (old.probe("readiness"), old.probe("liveness")) == (1, 1)
        for pod in deployment.nodes:
            if pod is not old:
                assert (pod.probe("readiness"), pod.probe("liveness")) == (1, 0), pod.name
        for sentinel in deployment.sentinels:
            assert (sentinel.probe("readiness"), sentinel.probe("liveness")) == (1, 0), sentinel.name
        old.start(new_pod=True)
        wait_for(lambda: "waiting for their failover" in old.last_start_log(), 20, "the old master waits", old.log)
        time.sleep(2)  # it keeps waiting: its port stays closed, no client can write into it
        assert old.running()
        with pytest.raises(Exception):  # noqa: B017 - any refusal: the port is closed
            deployment.node_client(old).ping()
        assert deployment.masters() == []
        released_at = time.monotonic()
    finally:
        deployment.sentinel_set("quorum", QUORUM)
    wait_for(lambda: deployment.promoted_other_than(old), 30, "Sentinel promoted a replica", deployment.describe)
    promoted = deployment.promoted_other_than(old)
    assert promoted is not None
    print(f"\npromotion once the quorum allowed it: {promoted.name} after {time.monotonic() - released_at:.2f} s")
    assert deployment.wait_healthy() is promoted
    assert f"starting as replica of {promoted.address} (" in old.last_start_log()
    assert "starting as master" not in old.last_start_log()


def test_a_sentinel_restarted_with_an_empty_conf_monitors_the_current_master_and_replaces_its_old_entry(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    master = master_elsewhere_than_node_0(deployment, healthy)
    restarted, peers = deployment.sentinels[0], deployment.sentinels[1:]
    old_id = deployment.sentinel_client(restarted).execute_command("SENTINEL", "MYID")
    restarted.kill()
    assert (restarted.probe("readiness"), restarted.probe("liveness")) == (1, 1)
    restarted.start(new_pod=True)
    assert deployment.wait_healthy() is master  # it names the master, sees the replicas and both peers
    new_id = deployment.sentinel_client(restarted).execute_command("SENTINEL", "MYID")
    assert new_id != old_id
    assert f"monitoring {MASTER_NAME} at {master.address} (named-by-sentinels)" in restarted.last_start_log()

    def peers_know_only_the_new_one() -> bool:
        for peer in peers:
            ids = {s["runid"] for s in deployment.sentinel_client(peer).sentinel_sentinels(MASTER_NAME)}
            if new_id not in ids or old_id in ids or len(ids) != len(deployment.sentinels) - 1:
                return False
        return True

    wait_for(peers_know_only_the_new_one, 20, "the peers replaced the old entry", deployment.describe)


def test_every_sentinel_restarted_at_once_finds_the_master_by_role_and_can_still_fail_it_over(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    master = master_elsewhere_than_node_0(deployment, healthy)
    for sentinel in deployment.sentinels:
        sentinel.kill()
    start_all(deployment.sentinels, new_pod=True)
    assert deployment.wait_healthy() is master
    logs = [s.last_start_log() for s in deployment.sentinels]
    assert all(f"monitoring {MASTER_NAME} at {master.address} " in log for log in logs), logs
    assert any("(answers-role-master)" in log for log in logs), logs
    # They form one working set again: a crash of the master is failed over.
    promoted, seconds = kill_and_wait_for_promotion(deployment, master)
    print(f"\npromotion by Sentinels that all restarted at once: {promoted.name} after {seconds:.2f} s")
    master.start(new_pod=True)
    assert deployment.wait_healthy() is promoted


def test_no_password_is_on_any_command_line_in_any_log_or_in_a_file_others_can_read(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    # A restart of one of each, so that the scripts' commands run again while ps looks at them.
    replica = next(p for p in deployment.nodes if p is not healthy)
    sentinel = deployment.sentinels[-1]
    seen: set[str] = set()
    stop = threading.Event()

    def sample_ps() -> None:
        while not stop.is_set():
            seen.update(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines())

    sampler = threading.Thread(target=sample_ps, daemon=True)
    sampler.start()
    try:
        for pod in (replica, sentinel):
            pod.kill()
            pod.start(new_pod=True)
        deployment.wait_healthy()
    finally:
        stop.set()
        sampler.join(timeout=10)
    secrets = (REDIS_PASSWORD, SENTINEL_PASSWORD)
    spied = deployment.spied_argv()
    # The spies saw the scripts' commands (so the check can fail), and none carries a password.
    assert any("get-master-addr-by-name" in line for line in spied) and any("redis-server" in line for line in spied)
    assert [line for line in spied if any(s in line for s in secrets)] == []
    assert any("redis-server" in line for line in seen)
    assert [line for line in seen if any(s in line for s in secrets)] == []
    for pod in [*deployment.nodes, *deployment.sentinels]:
        assert not any(s in pod.log() for s in secrets), pod.name
        for conf in pod.conf_dir.iterdir():
            mode = stat.S_IMODE(os.stat(conf).st_mode)
            assert mode & 0o077 == 0, f"{conf} is {oct(mode)}"
    data = [f for p in deployment.nodes for f in (p.workdir / "data").rglob("*") if f.is_file()]
    assert data and not any(f.suffix == ".conf" for f in data)  # no config with a password on the volume
