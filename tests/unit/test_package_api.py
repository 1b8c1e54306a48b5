"""The `celery_platform` package as other teams import it: its names, its version and its documented args."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import celery_platform

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {
    "CeleryPlatform": "celery_platform.resources.platform",
    "CeleryPlatformArgs": "celery_platform.config.platform",
    "PlatformNamespace": "celery_platform.resources.namespace",
    "NamespaceArgs": "celery_platform.resources.namespace",
    "LimitRangeSpec": "celery_platform.config.guardrails",
    "QuotaSpec": "celery_platform.config.guardrails",
    "Resources": "celery_platform.config.guardrails",
    "Ratio": "celery_platform.config.guardrails",
    "PlatformSecrets": "celery_platform.resources.secrets",
    "SecretsArgs": "celery_platform.resources.secrets",
    "Rotation": "celery_platform.config.rotation",
    "RedisBroker": "celery_platform.resources.redis",
    "RedisBrokerArgs": "celery_platform.resources.redis",
    "RedisSpec": "celery_platform.config.specs",
    "SentinelBroker": "celery_platform.resources.sentinel",
    "SentinelBrokerArgs": "celery_platform.resources.sentinel",
    "SentinelSpec": "celery_platform.config.sentinel",
    "CeleryWorkers": "celery_platform.resources.workers",
    "CeleryWorkersArgs": "celery_platform.resources.workers",
    "WorkloadSettings": "celery_platform.config.workload",
    "PoolSpec": "celery_platform.config.specs",
    "BeatSpec": "celery_platform.config.specs",
    "PodResources": "celery_platform.config.specs",
    "ValidationError": "celery_platform.config.problems",
    "CeleryMonitoring": "celery_platform.resources.monitoring",
    "CeleryMonitoringArgs": "celery_platform.resources.monitoring",
    "MonitoringSpec": "celery_platform.config.monitoring",
    "AlertThresholds": "celery_platform.config.monitoring",
}
ARGS_DATACLASSES = sorted(
    name for name in celery_platform.__all__ if dataclasses.is_dataclass(getattr(celery_platform, name))
)
DEFAULT_SENTENCE = re.compile(r"Default: \S.*$")


def field_docstrings(cls: type) -> dict[str, str]:
    """Read each field's docstring (the string right after it) from the class source: it is not kept at runtime."""
    tree = ast.parse(inspect.getsource(sys.modules[cls.__module__]))
    [node] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    docs = {}
    for statement, following in zip(node.body, [*node.body[1:], None], strict=True):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = following.value.value
    return docs


def test_all_exports_every_public_component_and_its_args() -> None:
    assert set(celery_platform.__all__) == {*PUBLIC, "__version__"}
    for name, module in PUBLIC.items():
        assert getattr(celery_platform, name) is getattr(importlib.import_module(module), name), name


def test_the_version_is_the_one_in_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert celery_platform.__version__ == pyproject["project"]["version"]


def test_the_changelog_has_an_entry_for_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(celery_platform.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


def test_the_package_docstring_opens_with_one_summary_line() -> None:
    assert celery_platform.__doc__ is not None
    summary, blank, *_ = celery_platform.__doc__.splitlines()
    assert summary.endswith(".") and blank == ""


def test_importing_the_package_imports_no_component_until_one_is_used() -> None:
    # The hooks module and the pure builders import `components`; that must not pull in the Pulumi SDK.
    code = (
        "import sys, celery_platform; print('pulumi' in sys.modules); "
        "celery_platform.PoolSpec; print('pulumi' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["False", "True"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        celery_platform.Nope  # noqa: B018


def test_there_are_args_dataclasses_to_check() -> None:
    assert len(ARGS_DATACLASSES) == 20


@pytest.mark.parametrize("name", ARGS_DATACLASSES)
def test_every_public_args_dataclass_is_frozen_and_keyword_only(name: str) -> None:
    cls = getattr(celery_platform, name)
    assert cls.__dataclass_params__.frozen
    assert all(f.kw_only for f in dataclasses.fields(cls))


@pytest.mark.parametrize("name", ARGS_DATACLASSES)
def test_every_field_of_a_public_args_dataclass_has_a_docstring(name: str) -> None:
    cls = getattr(celery_platform, name)
    docs = field_docstrings(cls)
    undocumented = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name, "").strip()]
    assert not undocumented, f"{name}: fields without a docstring: {undocumented}"


@pytest.mark.parametrize("name", ARGS_DATACLASSES)
def test_every_optional_field_docstring_ends_with_its_default(name: str) -> None:
    cls = getattr(celery_platform, name)
    docs = field_docstrings(cls)
    for f in dataclasses.fields(cls):
        optional = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        last_line = docs.get(f.name, "").strip().splitlines()[-1:] or [""]
        if optional:
            assert DEFAULT_SENTENCE.search(last_line[0]), f"{name}.{f.name}: docstring does not end with 'Default: …'"
        else:
            assert "Default:" not in docs.get(f.name, ""), f"{name}.{f.name} is required but documents a default"
