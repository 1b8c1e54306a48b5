"""The package as another team installs it: one import name of its own, typed for mypy --strict."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONSUMER = '''
"""A consumer with its own `components` package, next to the installed celery_platform."""

from celery_platform import CeleryWorkersArgs, PoolSpec, WorkloadSettings
from components import team_name

pool = PoolSpec(name="main", queues=("default", "email"))
settings = WorkloadSettings(image="ghcr.io/acme/app:1.2.3", app="app")
args_type: type[CeleryWorkersArgs] = CeleryWorkersArgs
print(team_name(), pool.queues)
'''
BARE_STRING = """
from celery_platform import PoolSpec

PoolSpec(name="main", queues="default")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(out),
        str(ROOT),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (built,) = out.glob("celery_platform-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package_named_celery_platform(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"celery_platform"}
    assert "celery_platform/py.typed" in names
    assert "celery_platform/hooks/celery_platform_hooks.py" in names


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A project outside this repo: the wheel installed into its own folder, beside its own components/."""
    project = tmp_path_factory.mktemp("consumer")
    site = project / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    (project / "components").mkdir()
    (project / "components" / "__init__.py").write_text('def team_name() -> str:\n    return "reports"\n')
    (project / "app.py").write_text(CONSUMER)
    (project / "bare.py").write_text(BARE_STRING)
    return project


def _env(project: Path) -> dict[str, str]:
    # Only the installed wheel and the consumer's folder: never this checkout's editable link tree.
    return {"PYTHONPATH": f"{project}:{project / 'site'}", "PYTHONSAFEPATH": "", "PATH": "/usr/bin:/bin"}


def test_a_consumer_with_its_own_components_folder_imports_both(consumer: Path) -> None:
    command = [sys.executable, "-c", "import runpy, sys; sys.path[:0] = sys.argv[1:]; runpy.run_path('app.py')"]
    result = subprocess.run(
        [*command, str(consumer), str(consumer / "site")], capture_output=True, text=True, cwd=consumer, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["reports", "('default',", "'email')"]


def test_a_typed_consumer_passes_mypy_strict(consumer: Path) -> None:
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", sys.executable]
    env = {"MYPYPATH": str(consumer / "site"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([*command, "app.py"], capture_output=True, text=True, cwd=consumer, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_refuses_a_bare_string_for_a_queue_sequence(consumer: Path) -> None:
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", sys.executable]
    env = {"MYPYPATH": str(consumer / "site"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([*command, "bare.py"], capture_output=True, text=True, cwd=consumer, env=env, timeout=300)
    assert result.returncode == 1, result.stdout
    assert 'Argument "queues" to "PoolSpec" has incompatible type "str"' in result.stdout
