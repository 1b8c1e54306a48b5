"""The component package under the real engine: ``pulumi package add`` on provider/, then up.

A separate project adds this repository's provider/ folder with ``pulumi package add``, which
builds the package's own venv, asks the plugin for its schema, generates an SDK and links it. Its
program then creates a whole CeleryPlatform through the plugin (the engine's Construct call, the
path every language takes), ``pulumi up`` converges with the provider's await logic on, and
destroy removes it. ``pulumi package get-schema`` works from the repository root.

The consumer is a Python project: no other language host can run here with this CLI. The newest
Pulumi YAML host that the module proxy serves (pulumi-yaml v1.25.0) builds only against pulumi
v3.206, lacks the Link call that ``package add`` makes ("method Link not implemented"), and starts
the v3.274 Python host with flags it no longer takes; the Node.js and Go hosts are not served.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.kube_testenv import KubeAPI

PROJECT = """name: package-consumer
description: A project of another team that uses the celery-platform component package.
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
"""
PROGRAM = """import pulumi
import pulumi_celery_platform as celery

config = pulumi.Config()
platform = celery.CeleryPlatform(
    "celery",
    namespace="team-pkg",
    image="ghcr.io/acme/app:1.2.3",
    celery_app="app",
    pools=[{"name": "main", "queues": ["default"], "replicas": 2, "concurrency": 2}],
    database_url=config.require_secret("databaseUrl"),
)
pulumi.export("brokerHost", platform.broker_host)
pulumi.export("brokerUrl", platform.broker_url)
pulumi.export("workerDeployments", platform.worker_deployments)
"""


def test_get_schema_works_from_the_repository_root(toolchain: Toolchain, cluster: KubeAPI, tmp_path: Path) -> None:
    project = make_project(tmp_path, toolchain, cluster, login=False)
    project.dir = REPO
    schema = json.loads(project.sh("pulumi package get-schema ./provider", timeout=600).stdout)
    assert schema["name"] == "celery-platform"
    assert "celery-platform:index:CeleryPlatform" in schema["resources"]


@pytest.fixture
def consumer(tmp_path: Path, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None) -> Project:
    project = make_project(tmp_path, toolchain, cluster)
    shutil.rmtree(project.dir)
    project.dir.mkdir()
    (project.dir / "Pulumi.yaml").write_text(PROJECT)
    (project.dir / "__main__.py").write_text(PROGRAM)
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("pulumi==")]
    (project.dir / "requirements.txt").write_text("\n".join(pins) + "\n")
    return project


def test_another_project_adds_the_package_and_ups_a_platform(consumer: Project) -> None:
    consumer.pulumi("install", timeout=900)
    consumer.sh(f"pulumi package add {REPO / 'provider'}", timeout=900)
    assert (consumer.dir / "sdks" / "celery-platform").is_dir()
    consumer.pulumi("stack", "init", "dev")
    consumer.pulumi("config", "set", "kubernetes:context", "my-dev-cluster")
    consumer.pulumi("config", "set", "--secret", "databaseUrl", "postgresql://app:pw@db.internal:5432/app")
    try:
        consumer.pulumi("preview", "--diff")
        consumer.pulumi("up", "--yes", timeout=1200)
        consumer.pulumi("preview", "--expect-no-changes")
        outputs = json.loads(consumer.pulumi("stack", "output", "--json").stdout)
        assert outputs["brokerHost"].endswith(".team-pkg.svc.cluster.local")
        assert outputs["brokerUrl"] == "[secret]"
        [name] = outputs["workerDeployments"].values()
        deployment = client.AppsV1Api(consumer.api.api_client).read_namespaced_deployment(name, "team-pkg")
        assert deployment.status.ready_replicas == 2
        # The package protects the generated Fernet key, as the stack does: destroy refuses until
        # its owner unprotects it on purpose.
        refused = consumer.pulumi("destroy", "--yes", check=False, timeout=900)
        assert refused.returncode != 0 and "celery-secrets-field-encryption-key" in refused.stdout + refused.stderr
        consumer.pulumi("state", "unprotect", "--all", "--yes")
        consumer.pulumi("destroy", "--yes", timeout=900)
        namespaces = client.CoreV1Api(consumer.api.api_client).list_namespace().items
        assert "team-pkg" not in {n.metadata.name for n in namespaces}
    finally:
        consumer.pulumi("state", "unprotect", "--all", "--yes", check=False)
        consumer.pulumi("destroy", "--yes", check=False, timeout=900)
