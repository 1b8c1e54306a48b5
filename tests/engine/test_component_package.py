"""The component package under the real engine, from another language: Pulumi YAML.

A YAML project runs ``pulumi package add`` on this repository's provider/ folder, then previews and
ups a whole CeleryPlatform with the provider's await logic on, and destroys it. ``pulumi package
get-schema`` works from the repository root too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.kube_testenv import KubeAPI

CONSUMER = {
    "name": "yaml-consumer",
    "description": "A Pulumi YAML project that uses the celery-platform component package.",
    "runtime": "yaml",
    "config": {"databaseUrl": {"type": "string", "secret": True}},
    "resources": {
        "celery": {
            "type": "celery-platform:index:CeleryPlatform",
            "properties": {
                "namespace": "team-yaml",
                "image": "ghcr.io/acme/app:1.2.3",
                "celeryApp": "app",
                "pools": [{"name": "main", "queues": ["default"], "replicas": 2, "concurrency": 2}],
                "databaseUrl": "${databaseUrl}",
            },
        }
    },
    "outputs": {
        "brokerHost": "${celery.brokerHost}",
        "brokerUrl": "${celery.brokerUrl}",
        "workerDeployments": "${celery.workerDeployments}",
    },
}


def test_get_schema_works_from_the_repository_root(toolchain: Toolchain, cluster: KubeAPI, tmp_path: Path) -> None:
    project = make_project(tmp_path, toolchain, cluster, login=False)
    project.dir = REPO
    schema = json.loads(project.sh("pulumi package get-schema ./provider").stdout)
    assert schema["name"] == "celery-platform"
    assert "celery-platform:index:CeleryPlatform" in schema["resources"]


@pytest.fixture
def consumer(tmp_path: Path, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None) -> Project:
    project = make_project(tmp_path, toolchain, cluster)
    shutil.rmtree(project.dir)
    project.dir.mkdir()
    (project.dir / "Pulumi.yaml").write_text(yaml.safe_dump(CONSUMER, sort_keys=False))
    return project


def test_a_yaml_project_adds_the_package_and_ups_a_platform(consumer: Project) -> None:
    consumer.sh(f"pulumi package add {REPO / 'provider'}", timeout=600)
    packages = yaml.safe_load((consumer.dir / "Pulumi.yaml").read_text()).get("packages", {})
    assert "celery-platform" in packages, packages
    consumer.pulumi("stack", "init", "dev")
    consumer.pulumi("config", "set", "kubernetes:context", "my-dev-cluster")
    consumer.pulumi("config", "set", "--secret", "databaseUrl", "postgresql://app:pw@db.internal:5432/app")
    try:
        consumer.pulumi("preview", "--diff")
        consumer.pulumi("up", "--yes", timeout=1200)
        consumer.pulumi("preview", "--expect-no-changes")
        outputs = json.loads(consumer.pulumi("stack", "output", "--json").stdout)
        assert outputs["brokerHost"] == "redis.team-yaml.svc.cluster.local"
        assert outputs["brokerUrl"] == "[secret]"
        apps = client.AppsV1Api(consumer.api.api_client)
        [name] = outputs["workerDeployments"].values()
        deployment = apps.read_namespaced_deployment(name, "team-yaml")
        assert deployment.status.ready_replicas == 2
    finally:
        consumer.pulumi("destroy", "--yes", check=False, timeout=900)
