"""Plain pytest for components.probes: the probe argv, env and args that the pod specs carry."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest

from celery_platform.builders import probes
from celery_platform.builders.probes import (
    BEAT_APP_TARGET,
    HOOKS_MODULE,
    WORKER_READY_MAX_AGE_SECONDS,
    ProbeCommands,
    beat_args,
    beat_env,
    beat_probe_commands,
    hooks_source,
    worker_env,
    worker_include_args,
    worker_probe_commands,
)
from celery_platform.config.volumes import HOOKS_MOUNT_PATH

STATE_DIR = "/tmp/state"


def all_probe_commands() -> list[ProbeCommands]:
    return [worker_probe_commands(STATE_DIR, 30), beat_probe_commands(STATE_DIR, 10, 60)]


def argvs(commands: ProbeCommands) -> list[list[str]]:
    return [commands.startup, commands.liveness, commands.readiness]


def hooks_module() -> ModuleType:
    path = Path(probes.__file__).parent.parent / "hooks" / f"{HOOKS_MODULE}.py"
    spec = importlib.util.spec_from_file_location(f"{HOOKS_MODULE}_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("commands", all_probe_commands(), ids=["worker", "beat"])
def test_no_probe_starts_python_or_celery_or_reads_proc(commands: ProbeCommands) -> None:
    for argv in argvs(commands):
        assert argv[0] in {"test", "sh"}
        for word in ("python", "celery", "/proc", "inspect"):
            assert not any(word in arg for arg in argv), (word, argv)


@pytest.mark.parametrize("commands", all_probe_commands(), ids=["worker", "beat"])
def test_probe_commands_are_non_empty_lists_of_strings(commands: ProbeCommands) -> None:
    for argv in argvs(commands):
        assert isinstance(argv, list) and argv
        assert all(isinstance(arg, str) for arg in argv)


def test_the_liveness_max_age_is_an_argument_of_the_liveness_argv() -> None:
    assert worker_probe_commands(STATE_DIR, 45).liveness[-2:] == [f"{STATE_DIR}/worker.heartbeat", "45"]
    assert beat_probe_commands(STATE_DIR, 10, 75).liveness[-2:] == [f"{STATE_DIR}/beat.heartbeat", "75"]


def test_worker_startup_waits_for_the_ready_file() -> None:
    commands = worker_probe_commands(STATE_DIR, 30)
    assert commands.startup == ["test", "-f", f"{STATE_DIR}/worker.ready"]


def test_worker_readiness_needs_the_ready_file_and_a_heartbeat_fresher_than_the_ready_max_age(tmp_path: Path) -> None:
    readiness = worker_probe_commands(str(tmp_path), 30).readiness
    ready, heartbeat = tmp_path / "worker.ready", tmp_path / "worker.heartbeat"
    assert readiness[-1] == str(WORKER_READY_MAX_AGE_SECONDS)
    heartbeat.touch()
    assert run(readiness) != 0, "ready without the ready file (the hooks remove it when a queue has no consumer)"
    ready.touch()
    assert run(readiness) == 0
    stale = time.time() - WORKER_READY_MAX_AGE_SECONDS - 3
    os.utime(heartbeat, (stale, stale))
    assert run(readiness) != 0, "ready although the heartbeat (touched only while consuming) is stale"
    heartbeat.unlink()
    assert run(readiness) != 0


def run(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, timeout=5, check=False).returncode


def test_liveness_passes_on_a_fresh_file_and_fails_on_a_stale_or_missing_one(tmp_path: Path) -> None:
    liveness = worker_probe_commands(str(tmp_path), 5).liveness
    heartbeat = tmp_path / "worker.heartbeat"
    assert run(liveness) != 0
    heartbeat.touch()
    assert run(liveness) == 0
    os.utime(heartbeat, (time.time() - 4, time.time() - 4))
    assert run(liveness) == 0
    os.utime(heartbeat, (time.time() - 7, time.time() - 7))
    assert run(liveness) == 1


def test_a_path_with_spaces_and_quotes_cannot_break_the_liveness_script(tmp_path: Path) -> None:
    state_dir = tmp_path / 'it\'s a "dir" $(false)'
    state_dir.mkdir()
    (state_dir / "worker.heartbeat").touch()
    assert run(worker_probe_commands(str(state_dir), 5).liveness) == 0


def test_worker_env_points_the_hooks_at_the_state_dir_and_adds_the_mount_after_the_images_pythonpath() -> None:
    assert worker_env(STATE_DIR, image_pythonpath=["/app", "/app/src"]) == {
        "CELERY_PLATFORM_HEARTBEAT_FILE": f"{STATE_DIR}/worker.heartbeat",
        "CELERY_PLATFORM_READY_FILE": f"{STATE_DIR}/worker.ready",
        "PYTHONPATH": f"/app:/app/src:{HOOKS_MOUNT_PATH}",
    }
    assert worker_env(STATE_DIR)["PYTHONPATH"] == HOOKS_MOUNT_PATH
    assert worker_include_args() == ["--include", "celery_platform_hooks"]


def test_beat_runs_through_the_hooks_module_and_keeps_its_schedule_in_the_state_dir() -> None:
    args = beat_args(STATE_DIR, 10)
    assert args[:3] == ["-A", BEAT_APP_TARGET, "beat"]
    assert args[3:] == ["--schedule", f"{STATE_DIR}/celerybeat-schedule", "--max-interval", "10"]
    assert beat_env(STATE_DIR, "proj.celery:app") == {
        "CELERY_PLATFORM_APP": "proj.celery:app",
        "CELERY_PLATFORM_HEARTBEAT_FILE": f"{STATE_DIR}/beat.heartbeat",
        "PYTHONPATH": HOOKS_MOUNT_PATH,
    }


def test_fails_when_the_beat_max_age_does_not_exceed_the_max_interval() -> None:
    with pytest.raises(ValueError, match="heartbeat_max_age_seconds: too small"):
        beat_probe_commands(STATE_DIR, 10, 11)


def test_fails_when_the_worker_max_age_is_below_two_seconds() -> None:
    with pytest.raises(ValueError, match="heartbeat_max_age_seconds"):
        worker_probe_commands(STATE_DIR, 1)


def test_fails_when_the_state_dir_is_relative() -> None:
    with pytest.raises(ValueError, match="state_dir: must be an absolute path"):
        worker_env("tmp/state")


def test_fails_when_beat_is_not_told_which_app_to_load() -> None:
    with pytest.raises(ValueError, match="app:"):
        beat_env(STATE_DIR, " ")


def test_hooks_source_is_the_module_text_and_compiles() -> None:
    source = hooks_source()
    compile(source, f"{HOOKS_MODULE}.py", "exec")
    assert "class HeartbeatStep" in source


def test_the_hooks_module_reads_the_env_names_that_probes_sets() -> None:
    module = hooks_module()
    assert module.HEARTBEAT_ENV == probes.HEARTBEAT_ENV
    assert module.READY_ENV == probes.READY_ENV
    assert module.APP_ENV == probes.APP_ENV
    assert module.HeartbeatStep.requires == ("celery.worker.components:Timer",)
