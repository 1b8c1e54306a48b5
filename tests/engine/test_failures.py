"""`pulumi up` fails clearly and in bounded time: a pod that fits no node, a broken image config."""

from __future__ import annotations

import time

import yaml
from kubernetes import client

from tests.engine.conftest import REPO, Project

ROLLOUT_TIMEOUT_SECONDS = 60


def _dev(key: str) -> object:
    return yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"][f"celery-platform:{key}"]


def test_a_pod_that_fits_no_node_fails_up_naming_the_workload_and_why(project: Project) -> None:
    project.init_stack("dev", "postgresql://app:pw@db.internal:5432/app")
    limit_range = _dev("limitRange")
    assert isinstance(limit_range, dict)
    limit_range["max"] = {"cpu": "8", "memory": "16Gi"}
    pools = _dev("pools")
    assert isinstance(pools, list)
    # 6 CPUs: the LimitRange and quota admit it, but no node has more than 3.8 allocatable.
    pools[0]["resources"] = {"requests": {"cpu": "6", "memory": "256Mi"}, "limits": {"cpu": "8", "memory": "512Mi"}}
    quota = {"requestsCpu": "32", "requestsMemory": "16Gi", "limitsCpu": "64", "limitsMemory": "32Gi", "pods": 20}
    for key, value in {
        "limitRange": limit_range,
        "pools": pools,
        "quota": quota,
        "rolloutTimeoutSeconds": str(ROLLOUT_TIMEOUT_SECONDS),
    }.items():
        project.set_config("dev", f"celery-platform:{key}", value)
    started = time.monotonic()
    try:
        result = project.pulumi("up", "--stack", "dev", "--yes", check=False, timeout=900)
        elapsed = time.monotonic() - started
        output = result.stdout + result.stderr
        assert result.returncode != 0
        # The provider names the workload and that its pods never became live; it does not say why.
        assert "celery-main" in output and "timed out waiting to be Ready" in output, output[-4000:]
        assert "Minimum number of live Pods was not attained" in output
        # The other workloads still converge; only the unschedulable pool fails, after its timeout.
        assert elapsed < ROLLOUT_TIMEOUT_SECONDS + 240, elapsed
        # Why is in the pod's status, where the README's troubleshooting sends the user.
        core = client.CoreV1Api(project.api.api_client)
        pods = core.list_namespaced_pod("celery-dev", label_selector="app.kubernetes.io/component=worker").items
        reasons = [c.message for p in pods for c in p.status.conditions or [] if c.reason == "Unschedulable"]
        assert reasons and all("Insufficient cpu" in r for r in reasons), reasons
    finally:
        project.pulumi("destroy", "--stack", "dev", "--yes", check=False)


def test_a_broken_image_config_fails_up_before_anything_changes(project: Project) -> None:
    project.init_stack("dev", "postgresql://app:pw@db.internal:5432/app")
    project.set_config("dev", "celery-platform:image", "ghcr.io/acme/celery-sample-app")
    started = time.monotonic()
    result = project.pulumi("up", "--stack", "dev", "--yes", check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "image: " in output and "ghcr.io/acme/celery-sample-app" in output, output[-4000:]
    assert "Traceback" not in output
    assert time.monotonic() - started < 120
    state = project.pulumi("stack", "export", "--stack", "dev").stdout
    assert "kubernetes:" not in state, "nothing was created"
