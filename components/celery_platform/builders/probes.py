"""Probe commands, env and args that tie worker and beat containers to the celery_platform_hooks module.

Pure functions, no Pulumi: the pod-spec builder calls them and plain pytest tests them. The probes
are exec argv lists that need only ``test``, ``sh``, ``stat`` and ``date``, which every Debian-based
Python image has. They never start Python or Celery (``celery inspect ping`` costs seconds of CPU and
leaks reply keys in Redis) and never read ``/proc/1/cmdline`` (which proves nothing).

How the files get written is explained in ``components/hooks/celery_platform_hooks.py``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from celery_platform.config.volumes import HOOKS_MOUNT_PATH

__all__ = [
    "BEAT_APP_TARGET",
    "HOOKS_FILENAME",
    "HOOKS_MODULE",
    "ProbeCommands",
    "beat_args",
    "beat_env",
    "beat_probe_commands",
    "hooks_source",
    "worker_env",
    "worker_include_args",
    "worker_probe_commands",
]

HOOKS_MODULE = "celery_platform_hooks"
HOOKS_FILENAME = f"{HOOKS_MODULE}.py"
#: What beat passes to ``celery -A``; the module resolves the user's app from CELERY_PLATFORM_APP.
BEAT_APP_TARGET = f"{HOOKS_MODULE}:app"

HEARTBEAT_ENV = "CELERY_PLATFORM_HEARTBEAT_FILE"
READY_ENV = "CELERY_PLATFORM_READY_FILE"
APP_ENV = "CELERY_PLATFORM_APP"
#: The stack's taskRoutes as JSON ``{"task name or glob": "queue"}``; the hooks module applies them.
TASK_ROUTES_ENV = "CELERY_PLATFORM_TASK_ROUTES"

WORKER_HEARTBEAT_FILENAME = "worker.heartbeat"
WORKER_READY_FILENAME = "worker.ready"
BEAT_HEARTBEAT_FILENAME = "beat.heartbeat"
BEAT_SCHEDULE_FILENAME = "celerybeat-schedule"

# $1 is the file, $2 the max age. A missing file fails in stat. The echo ends up in the kubelet's
# probe-failure event, which is the first thing an operator reads.
_FRESH_SCRIPT = "; ".join(
    [
        'mtime=$(stat -c %Y -- "$1") || exit 1',
        "age=$(( $(date +%s) - mtime ))",
        '[ "$age" -le "$2" ] && exit 0',
        'echo "$1 was last touched ${age}s ago (limit $2s)"',
        "exit 1",
    ]
)


# $1 the ready file, then _FRESH_SCRIPT's $2 file and $3 max age: ready file present and heartbeat fresh.
_READY_SCRIPT = "; ".join(
    [
        '[ -f "$1" ] || { echo "$1 is missing: the worker does not consume every queue it was started with"; exit 1; }',
        "shift",
        _FRESH_SCRIPT,
    ]
)
#: Readiness: how stale the worker heartbeat may be. It is touched every second while the worker
#: consumes every queue, so this only has to cover the mtime's whole seconds and a slow tick.
WORKER_READY_MAX_AGE_SECONDS = 5


@dataclass(frozen=True)
class ProbeCommands:
    """Exec argv lists for a container's startup, liveness and readiness probes."""

    startup: list[str]
    liveness: list[str]
    readiness: list[str]


def hooks_source() -> str:
    """Return the text of celery_platform_hooks.py, for the ConfigMap; works from an installed package."""
    return files("celery_platform").joinpath("hooks").joinpath(HOOKS_FILENAME).read_text(encoding="utf-8")


def _exists(path: str) -> list[str]:
    return ["test", "-f", path]


def _fresh(path: str, max_age_seconds: int) -> list[str]:
    # "sh" is $0; the path and the age travel as arguments so no quoting can break the script.
    return ["sh", "-c", _FRESH_SCRIPT, "sh", path, str(max_age_seconds)]


def _check_state_dir(state_dir: str) -> None:
    if not posixpath.isabs(state_dir):
        raise ValueError(f"state_dir: must be an absolute path (got {state_dir!r})")


def _pythonpath(image_pythonpath: Sequence[str]) -> str:
    # A container env var replaces the image's PYTHONPATH instead of extending it, so the image's own
    # entries are passed back in, first, and the hooks directory is added after them: the app imports
    # exactly what it would without the platform.
    return ":".join([*image_pythonpath, HOOKS_MOUNT_PATH])


def worker_include_args() -> list[str]:
    """Return the ``celery worker`` options that load the hooks module."""
    return ["--include", HOOKS_MODULE]


def worker_env(state_dir: str, *, image_pythonpath: Sequence[str] = ()) -> dict[str, str]:
    """Return the env a worker container needs for the hooks: file paths and PYTHONPATH.

    ``image_pythonpath`` is the image's own PYTHONPATH; the hooks mount follows it. Default: none.
    """
    _check_state_dir(state_dir)
    return {
        HEARTBEAT_ENV: posixpath.join(state_dir, WORKER_HEARTBEAT_FILENAME),
        READY_ENV: posixpath.join(state_dir, WORKER_READY_FILENAME),
        "PYTHONPATH": _pythonpath(image_pythonpath),
    }


def worker_probe_commands(state_dir: str, heartbeat_max_age_seconds: int) -> ProbeCommands:
    """Return the worker's probes: ready file present (startup), ready file present and heartbeat fresh
    within :data:`WORKER_READY_MAX_AGE_SECONDS` (readiness), fresh heartbeat (liveness).

    The hooks keep the ready file and touch the heartbeat every second only while the worker holds an
    active consumer for every queue it was started with, so a worker that stops consuming turns
    unready at once and is restarted once the heartbeat is older than the max age. The max age is
    also how long the event loop may stand still before the kubelet counts a failure. It stands still while
    the worker reconnects to its broker, for the outage plus up to 30 s of reconnect back-off (a
    10 s Redis outage measured as an 11-13 s gap), so size the max age above the outages that must
    not restart workers.
    """
    _check_state_dir(state_dir)
    if heartbeat_max_age_seconds < 2:
        raise ValueError(
            f"heartbeat_max_age_seconds: too small (got {heartbeat_max_age_seconds}, expected at least 2, "
            "because the file is touched once a second and its mtime is read in whole seconds)"
        )
    env = worker_env(state_dir)
    ready, heartbeat = env[READY_ENV], env[HEARTBEAT_ENV]
    return ProbeCommands(
        startup=_exists(ready),
        liveness=_fresh(heartbeat, heartbeat_max_age_seconds),
        readiness=["sh", "-c", _READY_SCRIPT, "sh", ready, heartbeat, str(WORKER_READY_MAX_AGE_SECONDS)],
    )


def beat_args(state_dir: str, max_interval_seconds: int) -> list[str]:
    """Return the arguments after ``celery`` for beat: ``-A <hooks>:app beat -s <file> --max-interval N``.

    ``-A`` names the hooks module, which loads the user's app from CELERY_PLATFORM_APP (see
    :func:`beat_env`); further ``beat`` options such as ``--loglevel`` may be appended. The schedule
    file lives in the writable state_dir because the root filesystem is read-only, and
    ``--max-interval`` bounds how long beat sleeps between passes, hence between heartbeats.
    """
    _check_state_dir(state_dir)
    if max_interval_seconds < 1:
        raise ValueError(f"max_interval_seconds: too small (got {max_interval_seconds}, expected at least 1)")
    return [
        "-A",
        BEAT_APP_TARGET,
        "beat",
        "--schedule",
        posixpath.join(state_dir, BEAT_SCHEDULE_FILENAME),
        "--max-interval",
        str(max_interval_seconds),
    ]


def beat_env(state_dir: str, app: str, *, image_pythonpath: Sequence[str] = ()) -> dict[str, str]:
    """Return the env a beat container needs: the user's ``-A`` value, heartbeat path, PYTHONPATH.

    ``image_pythonpath`` is the image's own PYTHONPATH; the hooks mount follows it. Default: none.
    """
    _check_state_dir(state_dir)
    if not app.strip():
        raise ValueError("app: must name the Celery app as `celery -A` would take it (got an empty string)")
    return {
        APP_ENV: app,
        HEARTBEAT_ENV: posixpath.join(state_dir, BEAT_HEARTBEAT_FILENAME),
        "PYTHONPATH": _pythonpath(image_pythonpath),
    }


def beat_probe_commands(state_dir: str, max_interval_seconds: int, heartbeat_max_age_seconds: int) -> ProbeCommands:
    """Return beat's probes: heartbeat present (startup, readiness), fresh heartbeat (liveness).

    Beat touches the heartbeat after every pass of its scheduling loop, and sleeps at most
    ``max_interval_seconds`` between passes, so the max age must exceed that interval with room for
    a slow pass (sending due tasks, syncing the schedule).
    """
    _check_state_dir(state_dir)
    if heartbeat_max_age_seconds <= max_interval_seconds + 1:
        raise ValueError(
            f"heartbeat_max_age_seconds: too small (got {heartbeat_max_age_seconds}, expected more than "
            f"max_interval_seconds + 1 = {max_interval_seconds + 1}, because beat may sleep that long "
            "between heartbeats)"
        )
    heartbeat = posixpath.join(state_dir, BEAT_HEARTBEAT_FILENAME)
    return ProbeCommands(
        startup=_exists(heartbeat),
        liveness=_fresh(heartbeat, heartbeat_max_age_seconds),
        readiness=_exists(heartbeat),
    )
