"""celery_platform.render: deterministic, ordered, provider-like, and never a secret value in the YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from celery_platform.render import render_documents, run_program, to_yaml
from celery_platform.render.mocks import KIND_ORDER, PLACEHOLDER
from celery_platform.render.stack_files import RENDER_SECRET_STANDINS, available_stacks, stack_config

ROOT = Path(__file__).resolve().parents[2]


def render_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery_platform.render", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("stack", available_stacks())
def test_the_same_stack_renders_the_same_bytes(stack: str) -> None:
    first, second = render_cli(stack), render_cli(stack)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    # The committed stack files are templates: stderr names the stand-ins, and says that no cluster was looked up.
    assert first.stderr == (
        "note: rendered with stand-ins for databaseUrl (see the top of the YAML)\n"
        "note: preflight: the CRDs and the Secrets and ConfigMaps that the stack names were not looked up: "
        "no cluster here (the offline render, or Pulumi mocks)\n"
    )


def test_dev_renders_the_namespace_guardrails_and_the_secret() -> None:
    kinds = [d["kind"] for d in yaml.safe_load_all(render_cli("dev").stdout)]
    for kind in ("Namespace", "LimitRange", "ResourceQuota", "NetworkPolicy", "Secret"):
        assert kind in kinds


@pytest.mark.parametrize("stack", available_stacks())
def test_objects_come_in_apply_order(stack: str) -> None:
    kinds = [d["kind"] for d in render_documents(stack)]
    ranks = [KIND_ORDER.index(k) for k in kinds]
    assert ranks == sorted(ranks)
    assert kinds[0] == "Namespace"


@pytest.mark.parametrize("stack", available_stacks())
def test_no_generated_or_configured_secret_value_reaches_the_yaml(stack: str) -> None:
    config, secret_keys = stack_config(stack)
    program = run_program(stack, config, secret_keys)
    text = to_yaml(program.mocks.ordered())
    assert program.mocks.generated, "the program generates keys"
    for value in [*program.mocks.generated, *RENDER_SECRET_STANDINS.values()]:
        assert value not in text
    for doc in yaml.safe_load_all(text):
        if doc["kind"] == "Secret":
            assert set(doc["stringData"].values()) == {PLACEHOLDER}


def test_an_unnamed_object_gets_a_deterministic_suffix_and_every_object_a_namespace() -> None:
    docs = render_documents("dev")
    [secret] = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith("celery-secrets-")]
    assert secret["metadata"]["name"].startswith("celery-secrets-")
    assert len(secret["metadata"]["name"]) == len("celery-secrets-") + 8
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "celery-dev"


def _render_with(tmp_path: Path, stack_text: str) -> subprocess.CompletedProcess[str]:
    """Render a copy of the project whose dev stack file is ``stack_text``."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_text)
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    return render_cli("dev", "--project-dir", str(tmp_path))


DEV = (ROOT / "Pulumi.dev.yaml").read_text()


def test_fails_when_the_sentry_dsn_is_invalid_and_names_the_field(tmp_path: Path) -> None:
    result = _render_with(tmp_path, DEV + "  celery-platform:sentryDsn: http://nope.example.com\n")
    assert result.returncode == 2
    assert "sentryDsn: not a valid Sentry DSN" in result.stderr
    assert "nope.example.com" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_fails_when_the_ratio_is_half_and_names_the_field(tmp_path: Path) -> None:
    bad = DEV.replace("maxLimitRequestRatio: {cpu: 2,", "maxLimitRequestRatio: {cpu: 0.5,")
    assert bad != DEV
    result = _render_with(tmp_path, bad)
    assert result.returncode == 2
    assert "limitRange.maxLimitRequestRatio.cpu: a limit/request ratio below 1 admits no container (got 0.5" in (
        result.stderr
    )
    assert result.stdout == ""


def test_output_file_option_writes_the_same_yaml(tmp_path: Path) -> None:
    target = tmp_path / "out" / "dev.yaml"
    result = render_cli("dev", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == render_cli("dev").stdout
