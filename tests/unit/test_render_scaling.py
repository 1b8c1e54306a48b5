"""The render's cost stays linear in the number of pools: checked by counting work, never by timing it."""

from __future__ import annotations

import cProfile
import gc
import pstats
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import write_synthetic_project
from celery_platform import render
from celery_platform.render import render_documents

POOLS = (2, 4, 8)


def _calls_per_function(project: Path, pools: int) -> dict[str, int]:
    """How many times each function of the package and the program ran during one render."""
    stack = write_synthetic_project(project, pools)
    profile = cProfile.Profile()
    profile.enable()
    documents = render_documents(stack, project)
    profile.disable()
    workers = [d for d in documents if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "worker"]
    assert sum(d["kind"] == "Deployment" for d in workers) == pools
    stats: Mapping[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {
        f"{Path(file).name}:{line}:{name}": int(row[1])
        for (file, line, name), row in stats.items()
        if "celery_platform" in file or f"{Path('infra')}" in file
    }


def test_every_function_of_the_package_runs_a_fixed_number_of_times_per_pool(tmp_path: Path) -> None:
    _calls_per_function(tmp_path, 1)  # imports and first-use caches, out of the way
    calls = {n: _calls_per_function(tmp_path, n) for n in POOLS}
    assert any("worker_pod_spec" in f for f in calls[POOLS[-1]]), "the profile sees the package"
    superlinear = {}
    for function in calls[POOLS[-1]]:
        c2, c4, c8 = (calls[n].get(function, 0) for n in POOLS)
        # Linear means the same number of extra calls for every extra pool: c8 - c4 == 2 (c4 - c2).
        if c8 - c4 != 2 * (c4 - c2):
            superlinear[function] = (c2, c4, c8)
    assert not superlinear, f"calls at {POOLS} pools grow faster than the pools: {superlinear}"


def test_the_program_runs_with_the_cyclic_collector_paused_and_it_is_back_on_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A full collection walks every live object, and every registered resource stays alive until the
    # run ends: with the collector on, collection time grew with the square of the pools.
    seen: list[bool] = []
    real = render.run_program

    def spy(*args: Any, **kwargs: Any) -> render.ProgramRun:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "run_program", spy)
    assert gc.isenabled()
    render_documents("dev")
    assert seen == [False]
    assert gc.isenabled()
