"""promtool (built from github.com/prometheus/prometheus by tools/promtool/build.sh) as a fixture.

A build failure FAILS the tests: there is no fallback and no skip. Env: PROMTOOL_BUILD_TIMEOUT (s,
default 3600).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = REPO_ROOT / "tools" / "promtool" / "build.sh"
BUILD_TIMEOUT_S = float(os.environ.get("PROMTOOL_BUILD_TIMEOUT", "3600"))


def build_promtool() -> Path:
    """Run tools/promtool/build.sh (cached by key) and return the promtool binary."""
    done = subprocess.run([str(BUILD_SH)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        pytest.fail(f"tools/promtool/build.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def promtool() -> Path:
    """The promtool binary."""
    return build_promtool()
