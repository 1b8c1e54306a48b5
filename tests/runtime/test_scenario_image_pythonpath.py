"""An image that sets its own PYTHONPATH: the platform adds the hooks directory to it, never replaces it.

The image is laid out as such images are: the app under ``/app`` (``ENV PYTHONPATH=/app``) and a
WORKDIR that does not hold it, so ``celery -A sample_app`` imports only through PYTHONPATH. The
render's own env, args and probes run against that layout; ``/app`` maps to a local copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.runtime import harness
from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.conftest import RedisServer

IMAGE_APP = "/app"


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    """(local /app, local WORKDIR): the sample app under /app, an empty WORKDIR elsewhere."""
    app_dir = tmp_path / "image" / "app"
    shutil.copytree(harness.SAMPLE_APP_DIR / "sample_app", app_dir / "sample_app")
    workdir = tmp_path / "image" / "srv"
    workdir.mkdir(parents=True)
    return app_dir, workdir


@pytest.fixture
def run_image(
    tmp_path: Path, redis_server: Callable[..., RedisServer], image: tuple[Path, Path]
) -> Iterator[Callable[[dict[str, Any]], tuple[harness.Kubelet, RedisServer]]]:
    made: list[harness.Kubelet] = []

    def make(overrides: dict[str, Any]) -> tuple[harness.Kubelet, RedisServer]:
        server = redis_server()
        manifests = harness.Manifests(harness.render("dev", overrides))
        host, port = harness.broker_fqdn(manifests)
        cluster = harness.Cluster(
            manifests=manifests,
            secret_values=harness.test_secret_values(server.password, host, port),
            service_addresses={"redis": ("127.0.0.1", server.port)},
            image_paths={IMAGE_APP: image[0]},
            image_workdir=image[1],
        )
        node = harness.Kubelet(manifests, cluster, tmp_path / f"kubelet-{len(made)}", broker=server)
        made.append(node)
        return node, server

    yield make
    for node in made:
        node.shutdown()


def test_a_worker_whose_image_sets_pythonpath_starts_with_the_hooks_added_after_the_images_path(
    run_image: Callable[[dict[str, Any]], tuple[harness.Kubelet, RedisServer]], image: tuple[Path, Path]
) -> None:
    node, server = run_image({"pod": f"pythonPath: [{IMAGE_APP}]"})
    env = {e["name"]: e.get("value") for e in node.pod_spec("celery-main")["containers"][0]["env"]}
    assert env["PYTHONPATH"] == f"{IMAGE_APP}:/etc/celery-platform/hooks", "the image's path first, then the hooks"

    pod = node.create_pod("celery-main")
    assert wait_until(lambda: pod.ready, timeout=60), pod.describe() + pod.log()
    # The app came from /app (the image's path), the probes' module from the hooks volume.
    assert pod.main.env["PYTHONPATH"].split(":")[0] == str(image[0])
    client = celery_client(server.url(), ["default"])
    result = client.send_task("sample_app.tasks.short_task", args=(1, 2), queue="default")
    assert wait_until(lambda: result.state == "SUCCESS", timeout=30), pod.log()
    assert result.get(timeout=5) == 3
    client.close()


def test_the_same_image_without_python_path_cannot_import_its_app(
    run_image: Callable[[dict[str, Any]], tuple[harness.Kubelet, RedisServer]],
) -> None:
    # What the issue reported: PYTHONPATH set to the hooks alone replaces the image's /app.
    node, _ = run_image({})
    pod = node.create_pod("celery-main")
    assert wait_until(lambda: "The module sample_app was not found" in pod.log(), timeout=60), pod.log()
    assert not pod.ready
