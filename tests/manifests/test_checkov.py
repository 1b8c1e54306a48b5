"""checkov's kubernetes framework finds nothing in the rendered stacks but the reasoned skips of checkov-skips.yaml."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.manifests.conftest import ROOT, STACKS, Render, pod_spec_of

CHECKOV = ROOT / "build" / "checkov-venv" / "bin" / "checkov"
SKIPS_FILE = Path(__file__).with_name("checkov-skips.yaml")
CHECK_ID = re.compile(r"^CKV2?_K8S_\d+$")
# Environment that would change what checkov runs (CKV_SKIP_CHECK, CKV_CHECK, API keys...).
CHECKOV_ENV_PREFIXES = ("CKV_", "BC_", "PRISMA_", "CHECKOV_")


def load_skips() -> list[dict[str, Any]]:
    """Return the entries of checkov-skips.yaml."""
    skips = yaml.safe_load(SKIPS_FILE.read_text())
    assert isinstance(skips, list), f"{SKIPS_FILE.name} must be a YAML list of {{id, reason}}"
    return skips


@dataclass(frozen=True)
class CheckovRun:
    """One checkov run over every stack's render, parsed."""

    argv: list[str]
    report: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.report["summary"]
        return summary

    def results(self, outcome: str, stack: str | None = None) -> list[dict[str, Any]]:
        """Return the ``failed`` or ``passed`` results, of one stack's file if ``stack`` is given."""
        found: list[dict[str, Any]] = self.report["results"].get(f"{outcome}_checks", [])
        if stack is None:
            return found
        return [r for r in found if Path(r["file_path"]).name == f"{stack}.yaml"]


def run_checkov(directory: Path, *extra: str) -> subprocess.Popen[str]:
    """Start checkov on ``directory``; fail (never skip) when its venv is missing."""
    if not os.access(CHECKOV, os.X_OK):
        pytest.fail(
            f"checkov is missing: {CHECKOV.relative_to(ROOT)} does not exist or is not executable. "
            "Create its venv with `make build/checkov-venv/.installed` (from requirements-checkov.txt)."
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(CHECKOV_ENV_PREFIXES)}
    argv = [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--skip-download", *extra]
    # cwd is the scanned folder, so no .checkov.yaml of the repo or of the caller applies.
    return subprocess.Popen(argv, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> CheckovRun:
    """Wait for checkov and parse its JSON report; exit codes other than 0/1 are errors."""
    stdout, stderr = process.communicate(timeout=600)
    argv = [str(a) for a in process.args]  # type: ignore[union-attr]
    assert process.returncode in (0, 1), f"{' '.join(argv)} exited {process.returncode}:\n{stderr[-4000:]}"
    parsed = json.loads(stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    [report] = [r for r in reports if r.get("check_type") == "kubernetes"] or [None]
    assert report is not None, f"checkov printed no kubernetes report:\n{stdout[:2000]}"
    failed = report["summary"]["failed"]
    assert process.returncode == (1 if failed else 0), f"exit {process.returncode} with {failed} failed checks"
    return CheckovRun(argv, report)


@dataclass(frozen=True)
class CheckovRuns:
    with_skips: CheckovRun
    """``--quiet --skip-check <the list>``: what the policy lets through."""
    without_skips: CheckovRun
    """Every check, passed ones included: what each skip is still needed for."""


@pytest.fixture(scope="session")
def checkov(renders: Callable[[str], Render], tmp_path_factory: pytest.TempPathFactory) -> CheckovRuns:
    """Run checkov twice (with and without the skip list) over a folder holding every stack's render."""
    directory = tmp_path_factory.mktemp("checkov")
    for stack in STACKS:
        (directory / f"{stack}.yaml").write_text(renders(stack).text)
    skip_ids = ",".join(entry["id"] for entry in load_skips())
    skipped = run_checkov(directory, "--quiet", *(["--skip-check", skip_ids] if skip_ids else []))
    full = run_checkov(directory)
    return CheckovRuns(with_skips=finish(skipped), without_skips=finish(full))


def _describe(result: dict[str, Any]) -> str:
    guideline = result.get("guideline") or ""
    return f"{result['check_id']} {result['check_name']!r} on {result['resource']}  {guideline}".rstrip()


def test_checkov_is_installed_in_its_own_venv() -> None:
    assert os.access(CHECKOV, os.X_OK), (
        f"{CHECKOV.relative_to(ROOT)} is missing: run `make build/checkov-venv/.installed` (requirements-checkov.txt)"
    )


def test_every_skipped_checkov_check_has_an_id_and_a_real_reason() -> None:
    skips = load_skips()
    ids = [entry.get("id") for entry in skips if isinstance(entry, dict)]
    assert len(ids) == len(skips), "every entry is a mapping"
    for entry in skips:
        assert set(entry) == {"id", "reason"}, f"{entry}: only `id` and `reason` are allowed"
        assert CHECK_ID.match(str(entry["id"])), f"{entry['id']!r} is not a checkov Kubernetes check id"
        reason = str(entry["reason"]).strip()
        assert len(reason) >= 60, f"{entry['id']}: the reason is too short to say why the check does not apply"
        assert not re.search(r"\b(todo|tbd|fixme|later)\b", reason, re.IGNORECASE), f"{entry['id']}: {reason!r}"
    assert len(set(ids)) == len(ids), f"duplicate ids in {SKIPS_FILE.name}: {ids}"


def test_checkov_finds_no_failed_check_outside_the_skip_list(stack: str, checkov: CheckovRuns) -> None:
    run = checkov.with_skips
    assert run.summary["parsing_errors"] == 0, run.report
    failed = run.results("failed", stack)
    if failed:
        pytest.fail(f"{stack}: checkov failed {len(failed)} checks:\n" + "\n".join(map(_describe, failed)))


def test_checkov_scanned_every_workload_and_service_of_the_stack(
    stack: str, checkov: CheckovRuns, rendered: Render
) -> None:
    run = checkov.without_skips
    assert run.summary["parsing_errors"] == 0, run.report
    scanned = {r["resource"] for outcome in ("passed", "failed") for r in run.results(outcome, stack)}
    expected = {
        f"{d['kind']}.{d['metadata'].get('namespace', 'default')}.{d['metadata']['name']}"
        for d in rendered.documents
        if pod_spec_of(d) is not None or d["kind"] in ("Service", "Secret", "ConfigMap")
    }
    assert expected, f"{stack} renders no workloads"
    assert expected <= scanned, f"checkov never evaluated {sorted(expected - scanned)}"


def test_every_skipped_checkov_check_still_fails_without_its_skip(checkov: CheckovRuns) -> None:
    failing = {r["check_id"] for r in checkov.without_skips.results("failed")}
    stale = [entry["id"] for entry in load_skips() if entry["id"] not in failing]
    assert not stale, f"no stack fails {stale} any more: remove them from {SKIPS_FILE.name}"


def test_no_rendered_object_suppresses_a_checkov_check_inline(
    stack: str, checkov: CheckovRuns, rendered: Render
) -> None:
    """Skips live in checkov-skips.yaml only, not in `checkov.io/skip*` annotations that bypass it."""
    for doc in rendered.documents:
        metas = [doc.get("metadata") or {}]
        if pod_spec_of(doc) is not None and doc["kind"] != "Pod":
            template = doc["spec"].get("template") or doc["spec"].get("jobTemplate", {}).get("spec", {}).get("template")
            metas.append((template or {}).get("metadata") or {})
        for meta in metas:
            annotations = meta.get("annotations") or {}
            inline = [k for k in annotations if k.startswith("checkov.io/")]
            assert not inline, f"{doc['kind']}/{doc['metadata']['name']} suppresses checks inline: {inline}"
    assert checkov.without_skips.summary["skipped"] == 0
    assert not [r for r in checkov.without_skips.results("skipped") if Path(r["file_path"]).name == f"{stack}.yaml"]
