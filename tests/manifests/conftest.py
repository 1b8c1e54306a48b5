"""Render every stack once per session with the CLI and hand the YAML and its documents to the tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from celery_platform.render.stack_files import available_stacks

ROOT = Path(__file__).resolve().parents[2]
STACKS = available_stacks()


@dataclass(frozen=True)
class Render:
    """One stack's render: the file the CLI wrote, its text and its documents."""

    stack: str
    path: Path
    text: str
    documents: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Return the documents of one kind, in render order."""
        return [d for d in self.documents if d["kind"] == kind]


def render_stack(stack: str, out_dir: Path) -> Render:
    """Run ``python -m celery_platform.render <stack> -o <out_dir>/<stack>.yaml`` and parse what it wrote."""
    path = out_dir / f"{stack}.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "celery_platform.render", stack, "-o", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"render of {stack} failed:\n{result.stderr}"
    text = path.read_text()
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    assert documents, f"render of {stack} printed no documents"
    return Render(stack, path, text, documents)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes ``stack`` once per Pulumi.<stack>.yaml file."""
    if "stack" in metafunc.fixturenames:
        metafunc.parametrize("stack", STACKS)


@pytest.fixture(scope="session")
def render_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that holds exactly one ``<stack>.yaml`` per stack, as the CLI wrote it."""
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="session")
def renders(render_dir: Path) -> Iterator[Callable[[str], Render]]:
    """Return a function that renders a stack on first use and caches it for the session."""
    cache: dict[str, Render] = {}

    def get(stack: str) -> Render:
        if stack not in cache:
            cache[stack] = render_stack(stack, render_dir)
        return cache[stack]

    yield get


@pytest.fixture
def rendered(stack: str, renders: Callable[[str], Render]) -> Render:
    """The current stack's render."""
    return renders(stack)


POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def pod_spec_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Return the pod spec a workload object creates pods from, or None for objects without pods."""
    kind = doc["kind"]
    if kind == "Pod":
        spec: dict[str, Any] = doc["spec"]
        return spec
    if kind in POD_TEMPLATE_KINDS:
        spec = doc["spec"]["template"]["spec"]
        return spec
    if kind == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    return None


def all_containers(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Return ``("Kind/name.container", container)`` for every container and init container of ``doc``."""
    spec = pod_spec_of(doc)
    if spec is None:
        return []
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    return [
        (f"{where}.{field}[{c['name']}]", c)
        for field in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(field) or []
    ]
