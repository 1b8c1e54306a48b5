"""The operations guide's switch to a managed TLS Redis and back, command for command, under the real engine.

docs/operations/external-broker.md has two ``sh`` blocks marked for this test: the switch from our Redis
to an external ``rediss://`` broker with its CA in a Secret, and the way back. A dev stack is brought up
as the README says; then each block runs verbatim in the project (HOME is the test's, the kube context
it names points at the test cluster). Before each block's ``make preview`` the plan is read as JSON:
the switch deletes our Redis and rolls every Celery pod and the exporter, the way back creates our
Redis again. After each ``make up`` (the provider's await logic on, kwok making the pods ready: the
broker itself need not answer) a second preview plans nothing, and the live objects carry the CA.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, brought_up, make_project
from tests.engine.guide import marked_blocks, type_and_name
from tests.kube_testenv import KubeAPI

STACK = "dev"
NAMESPACE = "celery-dev"
DATABASE_URL = "postgresql://app:engine-pw@db.internal:5432/app"
GUIDE = REPO / "docs" / "operations" / "external-broker.md"
MARKER = "<!-- engine-tested: tests/engine/test_tls_broker_switch.py"
CA_PATH = "/etc/celery-platform/broker-ca/ca.crt"


def guide_blocks() -> list[list[str]]:
    """The command lines of each ``sh`` block that follows this test's marker in the guide."""
    return marked_blocks(GUIDE, MARKER)


def _run_previewing(project: Project, lines: list[str]) -> dict[tuple[str, str], str]:
    """Run the block's lines verbatim; just before its ``make preview``, return the plan (type, name) -> op."""
    split = lines.index(f"make preview STACK={STACK}")
    project.sh("\n".join(lines[:split]))
    steps = {type_and_name(urn): op for urn, op in project.preview_steps(STACK).items()}
    steps.pop(("pulumi:pulumi:Stack", f"celery-platform-{STACK}"), None)
    project.sh("\n".join(lines[split:]), timeout=1800)
    return steps


def _write_ca(directory: Path) -> None:
    """A self-signed CA certificate, as a provider hands one out (its key is never needed here)."""
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=broker-ca"),
            *("-keyout", str(directory / "broker-ca.key"), "-out", str(directory / "broker-ca.pem")),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("tls-broker-switch"), toolchain, cluster)
    with brought_up(project, STACK, DATABASE_URL) as up:
        yield up


def test_the_guide_has_the_switch_and_the_way_back() -> None:
    to_tls, back = guide_blocks()
    assert to_tls[-2:] == [f"make preview STACK={STACK}", f"make up STACK={STACK}"]
    assert any("rediss://" in line and "--secret brokerUrl" in line for line in to_tls)
    assert f"make up STACK={STACK}" in back and any(line.startswith("pulumi config rm broker ") for line in back)


def test_switching_to_a_tls_broker_and_back_follows_the_guide_and_converges(deployed: Project) -> None:
    to_tls, back = guide_blocks()
    apps = client.AppsV1Api(deployed.api.api_client)
    _write_ca(deployed.dir)

    steps = _run_previewing(deployed, to_tls)
    assert steps[("kubernetes:apps/v1:StatefulSet", "celery-redis")] == "delete", steps
    for rolled in (
        ("kubernetes:apps/v1:Deployment", "celery-main"),
        ("kubernetes:apps/v1:Deployment", "celery-io"),
        ("kubernetes:apps/v1:StatefulSet", "celery-beat"),
        ("kubernetes:apps/v1:Deployment", "celery-exporter"),
    ):
        assert steps[rolled] == "update", (rolled, steps)
    assert not [key for key, op in steps.items() if op in ("create", "replace") and "redis" in key[1]], steps
    assert deployed.preview_steps(STACK) == {}, "the switch converged: a second preview plans nothing"

    # Monitoring stayed on, and the exporter reaches the broker as the workers do: the URL our Secret keeps
    # with its certificate checks (by reference, as our Redis's was), and the CA mounted.
    core = client.CoreV1Api(deployed.api.api_client)
    for name in ("celery-exporter", "celery-main"):
        pod = apps.read_namespaced_deployment(name, NAMESPACE).spec.template.spec
        [url] = [e for e in pod.containers[0].env if e.name == "CELERY_BROKER_URL"]
        secret = core.read_namespaced_secret(url.value_from.secret_key_ref.name, NAMESPACE)
        value = base64.b64decode(secret.data[url.value_from.secret_key_ref.key]).decode()
        assert value.startswith("rediss://") and value.endswith(f"?ssl_cert_reqs=required&ssl_ca_certs={CA_PATH}")
        assert [v.secret.secret_name for v in pod.volumes if v.name == "broker-ca"] == ["broker-ca"], name
    # Our Redis (Pulumi's celery-redis, the StatefulSet named redis) is gone.
    assert not [s for s in apps.list_namespaced_stateful_set(NAMESPACE).items if s.metadata.name == "redis"]

    steps = _run_previewing(deployed, back)
    assert steps[("kubernetes:apps/v1:StatefulSet", "celery-redis")] == "create", steps
    assert steps[("kubernetes:apps/v1:Deployment", "celery-exporter")] == "update", steps
    assert deployed.preview_steps(STACK) == {}, "the way back converged: a second preview plans nothing"
    exporter = apps.read_namespaced_deployment("celery-exporter", NAMESPACE).spec.template.spec
    assert not [v for v in exporter.volumes if v.name == "broker-ca"]
    assert apps.read_namespaced_stateful_set("redis", NAMESPACE).status.ready_replicas == 1
