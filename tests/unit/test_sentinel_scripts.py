"""The Sentinel pods' scripts parse under dash, and each probe is wired to the kind it was written for.

What the scripts do is proven by the runtime tier (tests/runtime/test_sentinel_pods.py), with real
redis-server and Sentinel processes; these are the cheap checks that catch a broken edit first.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from celery_platform.builders import sentinel_pods as pods
from celery_platform.builders import sentinel_scripts as scripts
from celery_platform.builders.sentinel_pods import SentinelNames, SentinelPodRefs
from celery_platform.config.sentinel import SentinelSpec
from celery_platform.config.specs import RedisSpec

SCRIPTS = {
    "REDIS_NODE_SCRIPT": scripts.REDIS_NODE_SCRIPT,
    "SENTINEL_SCRIPT": scripts.SENTINEL_SCRIPT,
    "REDIS_NODE_PRESTOP_SCRIPT": scripts.REDIS_NODE_PRESTOP_SCRIPT,
}
PROBES = {
    "REDIS_NODE_PROBE": scripts.REDIS_NODE_PROBE,
    "REDIS_NODE_LIVENESS_PROBE": scripts.REDIS_NODE_LIVENESS_PROBE,
    "SENTINEL_PROBE": scripts.SENTINEL_PROBE,
    "SENTINEL_LIVENESS_PROBE": scripts.SENTINEL_LIVENESS_PROBE,
}


def dash() -> str:
    # The image's /bin/sh is dash (Debian); a missing dash fails, never skips.
    path = shutil.which("dash")
    assert path is not None, "dash is not installed (apt: dash)"
    return path


@pytest.mark.parametrize("name", [*SCRIPTS, *PROBES])
def test_each_script_and_probe_parses_under_dash(name: str) -> None:
    text = SCRIPTS[name] if name in SCRIPTS else PROBES[name][2]
    result = subprocess.run([dash(), "-n", "-c", text], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_placeholder_is_left_in_a_script(name: str) -> None:
    assert "__" not in SCRIPTS[name]


def _containers() -> dict[str, dict[str, Any]]:
    spec, names = SentinelSpec(), SentinelNames("redis")
    refs = SentinelPodRefs(secret_name="s", node_domain="d", sentinel_domain="d", nodes="n:1", sentinels="s:1")
    redis = RedisSpec(persistent=True)
    return {
        "node": pods.node_pod_spec(redis, spec, refs, names)["containers"][0],
        "sentinel": pods.sentinel_pod_spec(redis, spec, refs, names)["containers"][0],
    }


@pytest.mark.parametrize(
    ("container", "readiness", "liveness"),
    [
        ("node", scripts.REDIS_NODE_PROBE, scripts.REDIS_NODE_LIVENESS_PROBE),
        ("sentinel", scripts.SENTINEL_PROBE, scripts.SENTINEL_LIVENESS_PROBE),
    ],
)
def test_only_readiness_asks_for_a_master_so_a_master_outage_restarts_no_pod(
    container: str, readiness: list[str], liveness: list[str]
) -> None:
    probes = {k: v["exec"]["command"] for k, v in _containers()[container].items() if k.endswith("Probe")}
    assert probes == {"startupProbe": liveness, "livenessProbe": liveness, "readinessProbe": readiness}


def test_the_data_node_runs_the_prestop_hook_under_its_bound_and_its_grace_period_covers_hook_and_shutdown() -> None:
    spec, names = SentinelSpec(), SentinelNames("redis")
    refs = SentinelPodRefs(secret_name="s", node_domain="d", sentinel_domain="d", nodes="n:1", sentinels="s:1")
    pod_spec = pods.node_pod_spec(RedisSpec(persistent=True), spec, refs, names)
    hook = pod_spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert hook == [
        "timeout",
        str(scripts.PRESTOP_SECONDS),
        "sh",
        "-c",
        scripts.REDIS_NODE_PRESTOP_SCRIPT,
        "redis-prestop",
    ]
    # The kubelet's one grace period holds the hook, then a master's SIGTERM (shutdown-timeout), with room.
    assert pod_spec["terminationGracePeriodSeconds"] > scripts.PRESTOP_SECONDS + scripts.REDIS_SHUTDOWN_SECONDS


def test_only_the_data_node_has_a_prestop_hook() -> None:
    assert "lifecycle" not in _containers()["sentinel"]
