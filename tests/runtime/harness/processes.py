"""The container runtime's part: how a container's processes run and end here, and how to find them.

A container is a process group started with the image's PATH (the venv's bin first, where ``celery``
is); killing the container kills the group. An exec probe is a process of its own, its group killed
when it overruns its timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
IMAGE_PATH = f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"


def killpg(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to every process of the group; a group that is gone already is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def run_exec_probe(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout_seconds: float) -> tuple[int, str]:
    """Run an exec probe; on timeout its whole process group is killed and it counts as a failure (-1)."""
    process = subprocess.Popen(
        list(argv),
        env={"PATH": IMAGE_PATH, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return -1, f"timed out after {timeout_seconds}s"
    return process.returncode, out.decode(errors="replace")


def processes_matching(needle: str, among: Iterable[int] | None = None) -> list[int]:
    """PIDs whose /proc cmdline contains needle (used to count beats, independent of the harness)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (among is not None and int(entry.name) not in among):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids
