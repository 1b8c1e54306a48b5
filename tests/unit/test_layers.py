"""The package's layers import only downwards, so the folder tree is the architecture the README draws."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "components" / "celery_platform"
# Each layer, and the layers it must never import. config/platform.py alone may use builders/: a whole
# platform's admission arithmetic runs on the pods that builders/ computes.
FORBIDDEN = {
    "config": ("builders", "resources", "package", "render"),
    "builders": ("resources", "package", "render"),
    "resources": ("package", "render"),
    "package": ("render",),
}
ALLOWED = {("config/platform.py", "builders")}
MAX_LINES = 450


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "celery_platform" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_above_it(layer: str) -> None:
    wrong = []
    for path in _modules(layer):
        relative = str(path.relative_to(PACKAGE))
        for above in sorted(_imported_layers(path) & set(FORBIDDEN[layer])):
            if (relative, above) not in ALLOWED:
                wrong.append(f"{relative} imports {above}/")
    assert wrong == []


def test_the_layer_check_sees_an_import_from_above(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from celery_platform.resources.platform import CeleryPlatform\nimport celery_platform.render\n")
    assert _imported_layers(module) == {"resources", "render"}


def test_every_layer_has_modules() -> None:
    assert all(_modules(layer) for layer in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outgrows_one_idea(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES
