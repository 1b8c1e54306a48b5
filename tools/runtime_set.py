"""Print the runtime set: the lines of a ``pip freeze`` that deploying and rendering import.

Run by tools/lock.sh with the lock venv's Python, where the package (not editable) and its closure are
installed: ``python tools/runtime_set.py FREEZE.txt > runtime.txt``. The runtime set is the closure of
the package's dependencies without the requirements in SKIPPED, so ``make venv`` installs it with
``--no-deps``; what is left out is pinned in requirements-dev.txt, which installs with its dependencies.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Requirer -> requirements of it that nothing here imports ("*": all of them), with why.
SKIPPED: dict[str, str | frozenset[str]] = {
    # The render loads only kubernetes/utils/quantity.py, on its own (celery_platform.config.quantities), and
    # that module imports only decimal: the REST client's HTTP, OAuth, websocket and aiohttp stacks
    # (13 MB) are never imported. The cluster tier uses the whole client: the dev set has them.
    "kubernetes": "*",
    # Only for `pulumi up --attach-debugger` (14 MB); the language host says how to install it then.
    "pulumi": frozenset({"debugpy"}),
}


def _requirements(name: str, extras: frozenset[str]) -> list[tuple[str, frozenset[str]]]:
    skipped = SKIPPED.get(name, frozenset())
    if skipped == "*":
        return []
    found: list[tuple[str, frozenset[str]]] = []
    for text in metadata.distribution(name).requires or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
            continue
        if canonicalize_name(requirement.name) not in skipped:
            found.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return found


def runtime_names(root: str) -> set[str]:
    """Canonical names of the distributions that ``root`` needs at run time, itself excluded."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = _requirements(canonicalize_name(root), frozenset())
    while todo:
        item = todo.pop()
        if item not in seen:
            seen.add(item)
            todo += _requirements(*item)
    return {name for name, _ in seen}


def main(freeze: Path) -> int:
    names = runtime_names("celery-platform")
    kept: list[str] = []
    left_out: list[str] = []
    for line in freeze.read_text().splitlines():
        name = canonicalize_name(line.split("==")[0])
        (kept if name in names else left_out).append(line)
    print("\n".join(kept))
    print(f"runtime_set.py: left out of the runtime set: {' '.join(left_out) or 'nothing'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
