"""The Sentinel wait-for-broker init container, run as built (sh and redis-cli) against real Sentinels.

It must hold the pod back until the Sentinels name a master and that node answers as master: not
while the Sentinels are down, not while they still name a master that was just killed, and never
with a wrong Sentinel password; and it must pass as soon as a promoted replica takes over.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from celery_platform.builders.sentinel import wait_for_sentinel_broker
from celery_platform.config.broker import SentinelClient
from celery_platform.config.specs import pod_resources
from tests.runtime.conftest import REDIS_PASSWORD, SENTINEL_PASSWORD
from tests.runtime.harness import IMAGE_PATH, wait_until
from tests.runtime.harness.sentinel import SentinelCluster

HELD_SECONDS = 5


def start_init(cluster: SentinelCluster, workdir: Path, sentinel_password: str) -> subprocess.Popen[bytes]:
    """Start the init container's command with its env, Secret references given the cluster's values."""
    container = wait_for_sentinel_broker(
        redis_image="redis:7.2.7",
        client=SentinelClient(
            master_name=cluster.master_name,
            addresses=tuple(f"{host}:{port}" for host, port in cluster.sentinel_addresses),
            password=("celery-broker", "SENTINEL_PASSWORD"),
        ),
        url_secret="celery-broker",
        url_key="CELERY_BROKER_URL",
        resources=pod_resources("10m", "16Mi", "50m", "32Mi"),
    )
    secrets = {"CELERY_BROKER_URL": cluster.url(), "SENTINEL_PASSWORD": sentinel_password}
    env = {"PATH": IMAGE_PATH}
    for item in container["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = secrets[ref["key"]] if ref else item["value"]
    log = (workdir / "init.log").open("ab")
    return subprocess.Popen(container["command"], env=env, stdout=log, stderr=subprocess.STDOUT)


def held(init: subprocess.Popen[bytes], seconds: float = HELD_SECONDS) -> bool:
    try:
        init.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_it_waits_for_sentinels_that_start_late_and_passes_once_they_name_a_master(tmp_path: Path) -> None:
    cluster = SentinelCluster(tmp_path / "cluster", REDIS_PASSWORD, SENTINEL_PASSWORD)
    init = start_init(cluster, tmp_path, SENTINEL_PASSWORD)
    try:
        assert held(init), (tmp_path / "init.log").read_text()
        cluster.start()
        assert init.wait(timeout=30) == 0, (tmp_path / "init.log").read_text()
        assert "waiting for the master celery through the Sentinels" in (tmp_path / "init.log").read_text()
    finally:
        init.kill()
        cluster.shutdown()


def test_it_waits_while_the_named_master_is_dead_and_passes_on_the_promoted_replica(
    sentinel_cluster: Callable[..., SentinelCluster], tmp_path: Path
) -> None:
    cluster = sentinel_cluster()
    old = cluster.master()
    old.kill()
    init = start_init(cluster, tmp_path, SENTINEL_PASSWORD)
    try:
        cluster.wait_for_new_master(old)
        assert wait_until(lambda: init.poll() is not None, 30), (tmp_path / "init.log").read_text()
        assert init.returncode == 0
        assert "waiting for the master" in (tmp_path / "init.log").read_text(), "it passed on the dead master"
    finally:
        init.kill()


def test_it_never_passes_with_a_wrong_sentinel_password(
    sentinel_cluster: Callable[..., SentinelCluster], tmp_path: Path
) -> None:
    cluster = sentinel_cluster()
    init = start_init(cluster, tmp_path, "not-the-sentinel-password")
    try:
        assert held(init), (tmp_path / "init.log").read_text()
    finally:
        init.kill()
