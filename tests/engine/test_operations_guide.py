"""The operations guide (docs/operations/), every command block verbatim, in order, on one stack.

One project and one dev stack for the whole guide, as a platform team's first week: the stack is
initialised and brought up as the deploy recipe says, then each page's ``engine-tested`` blocks run
as a user types them (one shell per block, ``set -euo pipefail``), in the guide's order, and the
cluster is checked after each: scale, add a pool, autoscaling, identity and pull secrets, rotation,
upgrade and destroy. The wall time of each operation is printed at the end (and on failure).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.engine.conftest import REPO, Project, make_project

MARKER = "<!-- engine-tested: tests/engine/test_operations_guide.py -->"
DATABASE_URL = "postgresql://app:engine-pw@db.internal:5432/app"
NS = "celery-dev"
# The guide's pages, in the order of its index (docs/operations/index.md).
PAGES = [
    "docs/operations/scale.md",
    "docs/operations/add-pool.md",
    "docs/operations/autoscaling.md",
    "docs/operations/identity.md",
    "docs/operations/rotation.md",
    "docs/operations/upgrade.md",
    "docs/operations/destroy.md",
]


def blocks(page: str) -> list[str]:
    """The page's engine-tested ```sh blocks, each as the shell script of its command lines."""
    text = (REPO / page).read_text()
    found = []
    for part in text.split(MARKER + "\n")[1:]:
        assert part.startswith("```sh\n"), f"{page}: the marker must be followed by a ```sh block"
        block = part.split("```sh\n", 1)[1].split("```", 1)[0]
        lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
        found.append("\n".join(line for line in lines if line and not line.startswith("#")))
    return found


def test_the_guide_is_every_operations_page_in_the_order_of_its_index() -> None:
    index = (REPO / "docs" / "operations" / "index.md").read_text()
    linked = [f"docs/operations/{name}" for name in re.findall(r"\]\(([\w-]+\.md)\)", index)]
    assert linked == PAGES
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs" / "operations").glob("*.md")}
    marked = {p for p in pages if MARKER in (REPO / p).read_text()}
    assert marked == set(PAGES)
    assert all(blocks(page) for page in PAGES)


def _ready(obj: client.V1Deployment | client.V1StatefulSet) -> bool:
    return bool(obj.status.ready_replicas) and obj.status.ready_replicas == (obj.spec.replicas or 1)


def test_the_operations_guide_runs_verbatim_on_one_stack(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    request.getfixturevalue("shared_venvs")
    project: Project = make_project(tmp_path, request.getfixturevalue("toolchain"), request.getfixturevalue("cluster"))
    # The program is this checkout's, for the whole guide: the venv's editable package is a link tree that a
    # concurrent install from another checkout of this repository can re-point while the guide runs, and
    # the convergence check must compare one program with itself.
    project.env["PYTHONPATH"] = str(REPO / "components")
    apps = client.AppsV1Api(project.api.api_client)
    core = client.CoreV1Api(project.api.api_client)
    custom = client.CustomObjectsApi(project.api.api_client)
    timings: list[tuple[str, float]] = []

    def timed(name: str, script: str) -> None:
        started = time.monotonic()
        project.sh(script, timeout=1800)
        timings.append((name, time.monotonic() - started))

    def report() -> str:
        return "\n".join(f"  {name:<32} {seconds:7.1f} s" for name, seconds in timings)

    try:
        # The starting point: a dev stack deployed as the deploy recipe says.
        project.init_stack("dev", DATABASE_URL)
        timed("first deploy (make up)", "make up STACK=dev")

        for page in PAGES:
            for number, script in enumerate(blocks(page), 1):
                timed(f"{Path(page).stem}" + (f" #{number}" if len(blocks(page)) > 1 else ""), script)
            name = Path(page).stem
            if name == "scale":
                main = apps.read_namespaced_deployment("celery-main", NS)
                assert main.spec.replicas == 3 and _ready(main)
            elif name == "add-pool":
                media = apps.read_namespaced_deployment("celery-media", NS)
                assert _ready(media)
                assert "thumbnails" in media.spec.template.spec.containers[0].args
            elif name == "autoscaling":
                scaled = custom.get_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects", "celery-io")
                assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["maxReplicaCount"] == 3
            elif name == "identity":
                account = core.read_namespaced_service_account("celery-app", NS)
                assert account.metadata.annotations["eks.amazonaws.com/role-arn"].endswith(":role/celery-dev")
                for workload in ("celery-main", "celery-io", "celery-media"):
                    spec = apps.read_namespaced_deployment(workload, NS).spec.template.spec
                    assert spec.service_account_name == "celery-app", workload
                    assert [s.name for s in spec.image_pull_secrets or []] == ["ghcr-pull"], workload
            elif name == "rotation":
                annotations = [s.metadata.annotations or {} for s in core.list_namespaced_secret(NS).items]
                rotated = [a for a in annotations if a.get("celery-platform/rotation.djangoSecretKey") == "1"]
                assert rotated and rotated[0].get("celery-platform/rotation.redisPassword") == "1"
            elif name == "upgrade":
                workloads = [
                    apps.read_namespaced_deployment(n, NS) for n in ("celery-main", "celery-io", "celery-media")
                ]
                workloads.append(apps.read_namespaced_stateful_set("celery-beat", NS))
                for workload in workloads:
                    assert workload.spec.template.spec.containers[0].image.endswith(":0.2.0"), workload.metadata.name
                    assert _ready(workload) or workload.metadata.name == "celery-io", workload.metadata.name
                # After the whole guide but destroy, the stack has converged: nothing left to apply.
                project.pulumi("preview", "--stack", "dev", "--expect-no-changes", "--policy-pack", "policy")
            elif name == "destroy":
                try:
                    phase = core.read_namespace(NS).status.phase
                except ApiException as e:
                    assert e.status == 404
                else:
                    assert phase == "Terminating"
                assert "dev" not in project.pulumi("stack", "ls", "--json").stdout
                assert (project.dir / "Pulumi.dev.yaml").exists(), "stack rm --preserve-config keeps the stack file"
    except BaseException:
        print(f"operations guide, wall time per operation so far:\n{report()}\n" + "\n".join(project.log))
        raise
    finally:
        # Nothing left behind when a step failed (after the guide's own destroy, these find no stack).
        project.pulumi("state", "unprotect", "--stack", "dev", "--all", "--yes", check=False)
        project.pulumi("destroy", "--stack", "dev", "--yes", check=False, timeout=900)
    with capsys.disabled():
        print(f"\noperations guide, wall time per operation:\n{report()}")
