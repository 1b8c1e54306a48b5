"""Our own Redis+Sentinel pods, proven with real processes: start scripts, failover, restarts and probes.

Three data nodes and three Sentinels (quorum 2, down-after 1 s) run the containers that
``celery_platform.builders.sentinel_pods`` builds: their command and args (``sh -c SCRIPT name
args``, the scripts of ``builders.sentinel_scripts``), env and exec probes, each pod on 127.0.0.1
with its own port standing in for its stable DNS name. Every test starts from a healthy
set (one master, its replicas synced, every Sentinel agreeing) and leaves one behind, so the tests do
not depend on their order; one set serves the module.

Measured figures (promotion seconds) are printed (``-s``); nothing here asserts a duration.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_platform.config.sentinel import SentinelSpec
from tests.runtime.harness.sentinel import FAST_SYNC_ARGS, rendered_deployment
from tests.runtime.harness.sentinel_pods import (
    Deployment,
    ScriptPod,
    command,
    known_sentinels,
    start_all,
    wait_for,
)

# Quotes, a backslash and a space: the config files must quote them, and no command line may show them.
REDIS_PASSWORD = 'r3dis "Pa55" w\\0rd'
SENTINEL_PASSWORD = "s3ntinel 'Pa55' w0rd"
# Short on purpose, to keep the tier fast; not the schema's minimum (1 s), which on a loaded 2-core CI machine
# can judge a just-promoted master down and fail over twice. The failover timeout is the schema's minimum, 4x.
SPEC = SentinelSpec(replicas=2, sentinels=3, down_after_milliseconds=2000, failover_timeout_milliseconds=8000)
MASTER_NAME = SPEC.master_name
DOWN_AFTER_MS = SPEC.down_after_milliseconds
QUORUM = SPEC.effective_quorum()


def _deployment(root: Path) -> Deployment:
    """The rendered data-node and Sentinel containers (``builders.sentinel_pods``), as local pods."""
    return rendered_deployment(root, SPEC, REDIS_PASSWORD, SENTINEL_PASSWORD, node_args=FAST_SYNC_ARGS)


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
    kill_and_wait_for_promotion(deployment, master)
    master.start(new_pod=True)
    return came_back_as_replica(deployment, master)


def write_and_replicate(deployment: Deployment, master: ScriptPod, prefix: str, count: int = 50) -> dict[str, bytes]:
    """Write ``count`` keys on the master and wait (WAIT) until every replica has acknowledged them."""
    client = deployment.node_client(master)
    values = {f"{prefix}:{n}": f"value-{n}".encode() for n in range(count)}
    client.mset(values)
    replicas = len(deployment.nodes) - 1
    assert command(client, "WAIT", replicas, 5000) == replicas
    return values


def came_back_as_replica(deployment: Deployment, pod: ScriptPod, why: str = "") -> ScriptPod:
    """Wait for a healthy set; check that ``pod``, restarted, started as a replica of another node, never master.

    Returns the master. (Not necessarily the first one promoted: Sentinels may fail over again.)
    """
    master = deployment.wait_healthy()
    assert master is not pod
    log = pod.last_start_log()
    started = re.search(r"starting as replica of (\S+) \((\S+)\)", log)
    assert started and started[1] != pod.address and "starting as master" not in log, log[:2000]
    assert not why or started[2] == why, log[:2000]
    return master


def wait_for_promotion(deployment: Deployment, old: ScriptPod) -> tuple[ScriptPod, float]:
    """Wait until every Sentinel names another node than ``old`` and it answers ROLE master: it, and when."""
    found: list[tuple[ScriptPod, float]] = []

    def promoted() -> bool:
        pod = deployment.promoted_other_than(old)
        if pod is not None:
            found.append((pod, time.monotonic()))
        return pod is not None

    wait_for(promoted, 30, "Sentinel promoted a replica", deployment.describe)
    return found[0]


def kill_and_wait_for_promotion(deployment: Deployment, master: ScriptPod) -> tuple[ScriptPod, float]:
    killed_at = time.monotonic()
    master.kill()
    promoted, at = wait_for_promotion(deployment, master)
    return promoted, at - killed_at


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
        assert [pod.probe(kind) for kind in ("startup", "liveness", "readiness")] == [0, 0, 0], pod.name
    for sentinel in deployment.sentinels:
        answer = command(deployment.sentinel_client(sentinel), "SENTINEL", "CKQUORUM", MASTER_NAME)
        assert answer.startswith("OK"), answer


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
    promoted = came_back_as_replica(deployment, healthy, "named-by-sentinels")
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
        kinds = ("startup", "liveness", "readiness")
        assert [old.probe(kind) for kind in kinds] == [1, 1, 1]
        for pod in [*deployment.nodes, *deployment.sentinels]:
            if pod is not old:  # alive (a restart would not help), not ready (no master to serve or hold up)
                assert [pod.probe(kind) for kind in kinds] == [0, 0, 1], pod.name
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
    promoted, at = wait_for_promotion(deployment, old)
    print(f"\npromotion once the quorum allowed it: {promoted.name} after {at - released_at:.2f} s")
    came_back_as_replica(deployment, old)


def test_a_sentinel_restarted_with_an_empty_conf_monitors_the_current_master_and_replaces_its_old_entry(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    master = master_elsewhere_than_node_0(deployment, healthy)
    restarted, peers = deployment.sentinels[0], deployment.sentinels[1:]
    old_id = command(deployment.sentinel_client(restarted), "SENTINEL", "MYID")
    restarted.kill()
    assert [restarted.probe(kind) for kind in ("startup", "liveness", "readiness")] == [1, 1, 1]
    restarted.start(new_pod=True)
    assert deployment.wait_healthy() is master  # it names the master, sees the replicas and both peers
    new_id = command(deployment.sentinel_client(restarted), "SENTINEL", "MYID")
    assert new_id != old_id
    assert f"monitoring {MASTER_NAME} at {master.address} (named-by-sentinels)" in restarted.last_start_log()

    def peers_know_only_the_new_one() -> bool:
        for peer in peers:
            ids = {s["runid"] for s in known_sentinels(deployment.sentinel_client(peer), MASTER_NAME)}
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
    came_back_as_replica(deployment, master)


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


def test_every_pod_restarted_at_once_converges_on_one_master_with_the_replicated_data(
    deployment: Deployment, healthy: ScriptPod
) -> None:
    """A namespace-wide restart (every volume kept, every emptyDir new): no Sentinel and no master answers
    at first, so node 0 becomes master (a replica before, if a failover moved the master) and the
    others its replicas; what every replica had acknowledged (WAIT) is kept."""
    before = master_elsewhere_than_node_0(deployment, healthy)
    values = write_and_replicate(deployment, before, "whole-restart")
    everything = [*deployment.nodes, *deployment.sentinels]
    for pod in everything:
        pod.kill()
    start_all(everything, new_pod=True)
    assert deployment.wait_healthy() is deployment.nodes[0]
    assert "starting as master (" in deployment.nodes[0].last_start_log()
    for pod in deployment.nodes:
        assert deployment.node_client(pod).mget(list(values)) == list(values.values()), pod.name
