"""An external broker named by an IPv6 address: KEDA's own redis scaler reaches it through the rendered address.

The dev stack is rendered with ``broker.external.host: "[::1]"`` and a pool that autoscales. The
ScaledObject's address goes to keda-backlog (tools/keda, KEDA's ``scalers.NewRedisScaler``) as it was
rendered, with no override, against a real redis-server listening on ``[::1]`` only. The unbracketed
``::1:PORT`` that the render used to write is refused by KEDA, which is why the brackets matter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.keda_tools import keda_backlog
from tests.runtime.harness.render import render_stack_file

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "ipv6-broker-password-0123456789"


def _free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def ipv6_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server bound to [::1] alone; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `apt-get install -y redis-server` (never skipped)")
    port = _free_ipv6_port()
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "::1",
        "--requirepass",
        PASSWORD,
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    with (tmp_path / "redis.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="::1", port=port, password=PASSWORD)
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.RedisError:
                time.sleep(0.1)
        else:
            pytest.fail(f"redis-server on [::1]:{port} did not answer; see {tmp_path}/redis.log")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _render(port: int) -> list[dict[str, Any]]:
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    config = document["config"]
    config.pop("celery-platform:redis", None)
    config["celery-platform:broker"] = {
        "type": "external",
        "external": {
            "host": "[::1]",
            "port": port,
            "urlSecret": {"name": "broker", "key": "url"},
            "passwordSecret": {"name": "broker", "key": "password"},
        },
    }
    config["celery-platform:monitoring"] = {**(config.get("celery-platform:monitoring") or {}), "enabled": False}
    main = config["celery-platform:pools"][0]
    main.pop("replicas", None)
    main["autoscaling"] = {"minReplicas": 0, "maxReplicas": 3}
    return render_stack_file("dev", document)


def test_keda_reaches_an_ipv6_broker_through_the_rendered_address(ipv6_redis: int) -> None:
    docs = _render(ipv6_redis)
    [scaled] = [d for d in docs if d["kind"] == "ScaledObject"]
    addresses = {t["metadata"]["address"] for t in scaled["spec"]["triggers"]}
    assert addresses == {f"[::1]:{ipv6_redis}"}

    redis.Redis(host="::1", port=ipv6_redis, password=PASSWORD).lpush("default", "m1", "m2")
    done = keda_backlog({"scaledObject": scaled, "authParams": {"password": PASSWORD}, "metadataOverrides": {}})
    assert done.returncode == 0, done.stderr
    assert sum(yaml.safe_load(done.stdout)["triggers"].values()) == 2.0

    # Every other consumer of the host: REDIS_HOST bare (redis-cli -h, redis-py), the egress policy an address.
    env = {
        e["name"]: e.get("value")
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"].get("initContainers", [])
        for e in c.get("env", [])
    }
    assert env["REDIS_HOST"] == "::1" and env["REDIS_PORT"] == str(ipv6_redis)
    cidrs = {
        block["ipBlock"]["cidr"]
        for d in docs
        if d["kind"] == "NetworkPolicy"
        for rule in d["spec"].get("egress", [])
        for block in rule.get("to", [])
        if "ipBlock" in block
    }
    assert "::1/128" in cidrs


def test_fails_when_keda_gets_an_unbracketed_ipv6_address(ipv6_redis: int) -> None:
    [scaled] = [d for d in _render(ipv6_redis) if d["kind"] == "ScaledObject"]
    done = keda_backlog(
        {
            "scaledObject": scaled,
            "authParams": {"password": PASSWORD},
            "metadataOverrides": {"address": f"::1:{ipv6_redis}"},
        }
    )
    assert done.returncode == 1, done.stdout
