"""The editable install (setuptools' strict mode, a link tree) holds every module of the package.

The link tree is made once by ``make venv``; it does not follow the source folders, so a module added
since then is missing from it until ``make relink``. This test says so by name, instead of an
ImportError somewhere else.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "components" / "celery_platform"


def test_every_module_of_the_source_tree_is_importable_from_the_installed_package() -> None:
    missing = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE)
        if "__pycache__" in relative.parts or relative.parts[0] in {"hooks", "exporter"}:
            continue  # hooks/ and exporter/ are scripts shipped in ConfigMaps, not modules of the package
        name = ".".join(("celery_platform", *relative.with_suffix("").parts)).removesuffix(".__init__")
        if importlib.util.find_spec(name) is None:
            missing.append(name)
    assert not missing, f"not in the editable install, run `make relink`: {missing}"
