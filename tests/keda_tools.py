"""KEDA's own code as a test oracle: keda-backlog and KEDA's CRDs, from tools/keda/build.sh.

keda-backlog (tools/keda/main.go) links github.com/kedacore/keda/v2: it validates a ScaledObject as
KEDA's admission webhook does (the checks that need no cluster), measures each redis trigger with
KEDA's redis scaler and combines them with KEDA's scalingModifiers formula code. A failing build FAILS
the tests: there is no fallback and no skip. Env: KEDA_BUILD_TIMEOUT (s, default 3600).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.kube_testenv import REPO_ROOT, run_build_script

BUILD_SH = REPO_ROOT / "tools" / "keda" / "build.sh"
BUILD_TIMEOUT_S = float(os.environ.get("KEDA_BUILD_TIMEOUT", "3600"))
RUN_TIMEOUT_S = 60.0


@functools.cache
def keda_dir() -> Path:
    """Run tools/keda/build.sh once per process (it is cached by key); return build/keda/<key>.

    It holds ``bin/keda-backlog`` and ``crds/keda.sh_*.yaml``.
    """
    with tempfile.NamedTemporaryFile(prefix="keda-build-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    built = run_build_script(BUILD_SH, log_path, BUILD_TIMEOUT_S)
    if not os.access(built / "bin" / "keda-backlog", os.X_OK):
        pytest.fail(f"tools/keda/build.sh printed no directory with bin/keda-backlog: {built}", pytrace=False)
    log_path.unlink()
    return built


def keda_backlog(payload: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run keda-backlog on ``payload`` (see tools/keda/main.go), whatever its exit status."""
    return subprocess.run(
        [str(keda_dir() / "bin" / "keda-backlog")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def backlog(scaled_object: dict[str, Any], password: str, address: str) -> dict[str, Any]:
    """KEDA's reading of ``scaled_object`` against the Redis at ``address`` (host:port).

    Every trigger's ``address`` is replaced by ``address`` and the TriggerAuthentication is stood in
    for by ``{"password": password}``. Returns ``{"triggers": {name: value}, "active": bool,
    "composite": float | None, "compositeActive": bool | None}``; fails the test if KEDA rejects it.
    """
    done = keda_backlog(
        {"scaledObject": scaled_object, "authParams": {"password": password}, "metadataOverrides": {"address": address}}
    )
    if done.returncode != 0:
        pytest.fail(f"keda-backlog failed (exit {done.returncode}):\n{done.stderr[-4000:]}", pytrace=False)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def keda_crds() -> list[dict[str, Any]]:
    """KEDA's CustomResourceDefinitions from the same module version keda-backlog links."""
    from tests.operator_crds import load_crds

    return load_crds(keda_dir() / "crds")


# The backlog both KEDA runtime tests queue (a plain Redis and one behind Sentinels), and where kombu puts it.
QUEUES = ("default", "high")  # q0, q1 in the rendered trigger names
SEP = "\x06\x16"  # kombu's Redis transport: Channel.sep

# (queue, priority or None, how many). kombu rounds a priority down to its step of [0, 3, 6, 9].
SENT: list[tuple[str, int | None, int]] = [
    ("default", None, 3),
    ("default", 2, 1),  # step 0: the bare list
    ("default", 4, 2),  # step 3
    ("default", 6, 1),  # step 6
    ("default", 9, 2),  # step 9
    ("high", None, 1),
    ("high", 3, 3),  # step 3
    ("high", 8, 1),  # step 6; nothing at step 9, so that list does not exist in Redis
]
# What each trigger must read: the rendered trigger name -> messages in that list.
EXPECTED = {"q0p0": 4, "q0p3": 2, "q0p6": 1, "q0p9": 2, "q1p0": 1, "q1p3": 3, "q1p6": 1, "q1p9": 0}
