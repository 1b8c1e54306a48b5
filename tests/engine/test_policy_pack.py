"""The policy pack under the real engine: both stacks pass it, and each policy refuses its violation."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.kube_testenv import KubeAPI

POLICIES = {
    "containers-have-bounded-resources": "unbounded",
    "images-are-pinned": "latest",
    "probes-check-health": "proc-probe",
    "celery-beat-runs-at-most-once": "beat",
    "celery-beat-is-not-autoscaled": "beat-hpa",
    "autoscaled-workloads-leave-replicas-to-the-autoscaler": "scaled-keda",  # registered after "scaled"
    "autoscaler-credentials-come-from-secrets": "scaled-keda",
    "secrets-come-from-secret-refs": "literal-secret",
    "pods-are-restricted": "privileged",
}


def test_every_policy_of_the_pack_has_a_crafted_violation() -> None:
    names = set(re.findall(r'name="([a-z-]+)"', (REPO / "policy" / "__main__.py").read_text()))
    assert names - {"celery-platform-guardrails"} == set(POLICIES)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_passes_the_policy_pack(stack: str, project: Project) -> None:
    project.init_stack(stack, "postgresql://app:pw@db.internal:5432/app")
    result = project.pulumi("preview", "--stack", stack, "--policy-pack", "policy")
    assert "celery-platform-guardrails" in result.stdout
    assert "mandatory" not in result.stdout


@pytest.fixture
def violations(tmp_path: Path, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None) -> Project:
    project = make_project(tmp_path, toolchain, cluster)
    shutil.rmtree(project.dir)
    project.dir.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy2(Path(__file__).parent / "violations" / name, project.dir / name)
    (project.dir / "venv").symlink_to(REPO / "venv")
    (project.dir / "policy").symlink_to(REPO / "policy")
    project.pulumi("stack", "init", "violations")
    project.pulumi("config", "set", "kubernetes:context", "my-dev-cluster")
    return project


def test_each_policy_refuses_its_crafted_violation_by_name(violations: Project) -> None:
    result = violations.pulumi("preview", "--policy-pack", "policy", check=False)
    assert result.returncode != 0, "mandatory violations must fail the preview"
    # `pulumi preview --json` leaves policy results out; the text lists each as
    #   - [mandatory]  <policy>  (<type>: <resource>)
    found = set(re.findall(r"- \[mandatory\]\s+([a-z-]+)\s+\(.*: ([\w-]+)\)", result.stdout))
    for policy, resource in POLICIES.items():
        assert (policy, resource) in found, (policy, found)
    assert {p for p, _ in found} == set(POLICIES), "no policy fires on an object it was not aimed at"


def test_a_stricter_pack_config_refuses_what_the_default_allows(project: Project, tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"containers-have-bounded-resources": {"maxCpuLimitRequestRatio": 1.5}}))
    project.init_stack("dev", "postgresql://app:pw@db.internal:5432/app")
    result = project.pulumi(
        "preview", "--stack", "dev", "--policy-pack", "policy", "--policy-pack-config", str(config), check=False
    )
    assert result.returncode != 0
    assert "containers-have-bounded-resources" in result.stdout + result.stderr
