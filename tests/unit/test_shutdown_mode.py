"""A pool's shutdown mode: the env and grace period it renders, the ranges it accepts, the hooks' refusal."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st

from celery_platform.builders.celery_pods import PLAN_REFS, worker_pod_spec
from celery_platform.config.specs import MAX_SOFT_SHUTDOWN_SECONDS, PoolSpec
from celery_platform.config.workload import WorkloadSettings
from celery_platform.hooks import celery_platform_hooks as hooks

SETTINGS = WorkloadSettings(image="registry.example.com/app:1.0.0", app="proj", longest_task_seconds=600)


def rendered(pool: PoolSpec) -> tuple[dict[str, Any], int]:
    """The worker container's literal env and the pod's terminationGracePeriodSeconds."""
    spec = worker_pod_spec(SETTINGS, pool, PLAN_REFS, pool.name)
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e}
    return env, spec["terminationGracePeriodSeconds"]


def test_a_finish_pool_waits_for_the_longest_task_and_keeps_celerys_warm_shutdown() -> None:
    env, grace = rendered(PoolSpec(name="main", queues=("default",)))
    assert grace == 600 + 30
    assert "REMAP_SIGTERM" not in env and hooks.SOFT_SHUTDOWN_ENV not in env


def test_a_requeue_pool_remaps_sigterm_and_waits_only_for_its_soft_shutdown() -> None:
    env, grace = rendered(PoolSpec(name="main", queues=("default",), shutdown="requeue", soft_shutdown_seconds=45))
    assert grace == 45 + 30
    assert env["REMAP_SIGTERM"] == "SIGQUIT"
    assert env[hooks.SOFT_SHUTDOWN_ENV] == "45"


@given(st.integers(min_value=1, max_value=MAX_SOFT_SHUTDOWN_SECONDS))
def test_every_soft_shutdown_in_range_is_valid_and_sets_the_grace_period(seconds: int) -> None:
    pool = PoolSpec(name="main", queues=("default",), shutdown="requeue", soft_shutdown_seconds=seconds)
    assert pool.validate("pools[0]") == []
    assert rendered(pool)[1] == seconds + 30


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_SOFT_SHUTDOWN_SECONDS + 1)))
def test_fails_when_the_soft_shutdown_is_out_of_range(seconds: int) -> None:
    pool = PoolSpec(name="main", queues=("default",), shutdown="requeue", soft_shutdown_seconds=seconds)
    assert [p.field for p in pool.validate("pools[0]")] == ["pools[0].softShutdownSeconds"]


@given(st.text(max_size=10).filter(lambda mode: mode not in ("finish", "requeue")))
def test_fails_when_the_shutdown_mode_is_unknown(mode: str) -> None:
    problems = PoolSpec(name="main", queues=("default",), shutdown=mode).validate("pools[0]")
    assert [(p.field, p.expected) for p in problems] == [("pools[0].shutdown", "finish or requeue")]


def test_the_hooks_give_celery_the_soft_shutdown_of_a_requeue_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hooks.SOFT_SHUTDOWN_ENV, "45")
    app = Celery("proj", set_as_current=False)
    hooks.configure_soft_shutdown(app)
    assert app.conf.worker_soft_shutdown_timeout == 45.0
    assert app.conf.worker_enable_soft_shutdown_on_idle is True


def test_the_hooks_leave_a_finish_pool_on_celerys_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hooks.SOFT_SHUTDOWN_ENV, raising=False)
    app = Celery("proj", set_as_current=False)
    hooks.configure_soft_shutdown(app, version=(5, 4))
    assert app.conf.worker_soft_shutdown_timeout == 0.0
    assert app.conf.worker_enable_soft_shutdown_on_idle is False


def test_fails_when_a_requeue_worker_runs_a_celery_older_than_5_5(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hooks.SOFT_SHUTDOWN_ENV, "45")
    app = Celery("proj", set_as_current=False)
    with pytest.raises(SystemExit, match=r"older than 5\.5"):
        hooks.configure_soft_shutdown(app, version=(5, 4))
    assert app.conf.worker_soft_shutdown_timeout == 0.0
