"""examples/consumer, a separate project that reuses the components, run under mocks like `pulumi up`."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from celery_platform.render.mocks import RenderMocks
from tests.conftest import is_secret, objects_of, resolve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consumer"
PROJECT = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())["name"]
NAMESPACE = "reports-prod"
DATABASE_URL = "postgresql://reports:pw@db.internal:5432/reports"
CONFIG = {
    f"{PROJECT}:namespace": NAMESPACE,
    f"{PROJECT}:image": "ghcr.io/acme/reports:2.4.1",
    f"{PROJECT}:databaseUrl": DATABASE_URL,
}


def run_example(config: dict[str, str]) -> tuple[RenderMocks, dict[str, Any]]:
    """Run examples/consumer/__main__.py with ``config`` as its stack config, as the render does."""
    secret_keys = [f"{PROJECT}:databaseUrl"]
    saved = {k: os.environ.get(k) for k in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")}
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secret_keys)
    try:
        pulumi.runtime.config.set_all_config({}, secret_keys)
        mocks = RenderMocks()
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="prod", preview=False)
        program: dict[str, Any] = {}
        main = str(EXAMPLE / "__main__.py")
        _sync_await(run_pulumi_func(lambda: program.update(runpy.run_path(main, run_name="__main__"))))
    finally:
        # Later tests read their own config: leave no trace of this project's.
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return mocks, program


@pytest.fixture(scope="module")
def example() -> tuple[RenderMocks, dict[str, Any]]:
    """One run of the example with a complete stack config, shared by the tests that only read it."""
    return run_example(CONFIG)


def test_the_example_is_its_own_pulumi_project() -> None:
    project = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())
    assert project["name"] != "celery-platform" and project["runtime"]["name"] == "python"
    assert project["config"]["databaseUrl"]["secret"] is True
    assert "-e ../.." in (EXAMPLE / "requirements.txt").read_text().splitlines()


def test_the_example_deploys_two_pools_as_two_deployments(example: tuple[RenderMocks, dict[str, Any]]) -> None:
    mocks, _ = example
    assert sorted(d["metadata"]["name"] for d in objects_of(mocks, "Deployment")) == [
        "reports-export",
        "reports-ingest",
    ]
    assert sorted(p["metadata"]["name"] for p in objects_of(mocks, "PodDisruptionBudget")) == [
        "reports-export-pdb",
        "reports-ingest-pdb",
    ]


def test_the_example_creates_no_namespace_and_no_beat(example: tuple[RenderMocks, dict[str, Any]]) -> None:
    mocks, _ = example
    assert objects_of(mocks, "Namespace") == []
    assert objects_of(mocks, "LimitRange") == [] and objects_of(mocks, "ResourceQuota") == []
    assert [s["metadata"]["name"] for s in objects_of(mocks, "StatefulSet")] == ["reports-redis"]
    assert not any(t == "celery-platform:index:PlatformNamespace" for t, _, _ in mocks.resources)


def test_every_object_lives_in_the_configured_namespace(example: tuple[RenderMocks, dict[str, Any]]) -> None:
    mocks, program = example
    assert mocks.objects and {o["metadata"]["namespace"] for o in mocks.objects} == {NAMESPACE}
    assert resolve(program["broker"].host) == f"reports-redis.{NAMESPACE}.svc.cluster.local"


def test_the_pods_read_every_secret_by_secret_key_ref(example: tuple[RenderMocks, dict[str, Any]]) -> None:
    mocks, program = example
    secret_name = resolve(program["secrets"].secret_name)
    broker_secret = resolve(program["broker"].url_secret_name)
    for deployment in objects_of(mocks, "Deployment"):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DATABASE_URL"):
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": name}, name
            assert "value" not in env[name]
        assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"]["name"] == broker_secret


def test_the_database_url_from_secret_config_stays_secret(example: tuple[RenderMocks, dict[str, Any]]) -> None:
    mocks, program = example
    assert is_secret(program["secrets"].database_url) and is_secret(program["broker"].url)
    assert DATABASE_URL not in json.dumps(mocks.ordered())


def test_the_pools_keep_their_own_shape(example: tuple[RenderMocks, dict[str, Any]]) -> None:
    mocks, _ = example
    by_name = {d["metadata"]["name"]: d for d in objects_of(mocks, "Deployment")}
    assert by_name["reports-ingest"]["spec"]["replicas"] == 2
    export = by_name["reports-export"]["spec"]["template"]["spec"]["containers"][0]
    assert export["args"][export["args"].index("-Q") + 1] == "export,export-large"
    assert export["args"][export["args"].index("--concurrency") + 1] == "1"
    assert export["resources"]["limits"] == {"cpu": "400m", "memory": "1Gi"}


def test_fails_when_the_namespace_is_not_configured() -> None:
    with pytest.raises(pulumi.ConfigMissingError):
        run_example({k: v for k, v in CONFIG.items() if not k.endswith(":namespace")})


def test_the_render_cli_renders_the_consumer_project_from_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "consumer.yaml"
    command = [sys.executable, "-m", "celery_platform.render", "prod", "--project-dir", str(EXAMPLE), "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert {d["metadata"].get("namespace") for d in docs} == {NAMESPACE}
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Deployment") == sorted(
        d["metadata"]["name"] for d in objects_of(run_example(CONFIG)[0], "Deployment")
    )
    assert "Namespace" not in {d["kind"] for d in docs}, "the consumer reuses a namespace it does not own"


def test_fails_when_the_project_dir_holds_no_pulumi_project(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "celery_platform.render", "prod", "--project-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no Pulumi.yaml" in result.stderr and "Traceback" not in result.stderr
