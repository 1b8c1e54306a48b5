"""The docs lead, and what they tell a user to run is what the engine tier runs.

- Every ```sh block in README.md and docs/ is a command a user runs: it must follow an
  ``<!-- engine-tested: tests/engine/<file>.py -->`` line naming an engine test that exists and reads that page.
- Every alert of the PrometheusRule has a runbook page, docs/runbooks/<alert name in lower case>.md (the
  path the alerts' runbook links take on the site), and every runbook page is an alert's.
- README.md stays a short entry point, and its deploy recipe is the docs' deploy recipe.
- mkdocs.yml makes a broken internal link or anchor fail ``make docs`` (strict).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from celery_platform.builders.monitoring_rules import alert_rules
from celery_platform.config.monitoring import AlertThresholds

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- engine-tested: (tests/engine/[\w/]+\.py)\b.*-->$")
DOC_PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
README_MAX_LINES = 120


def sh_blocks(path: Path) -> list[tuple[int, str | None]]:
    """(line number, the engine test its marker names, or None) for each ```sh block of ``path``."""
    lines = path.read_text().splitlines()
    found = []
    for number, line in enumerate(lines, 1):
        if line.strip() == "```sh":
            marker = MARKER.match(lines[number - 2].strip()) if number >= 2 else None
            found.append((number, marker.group(1) if marker else None))
    return found


def block_after(text: str, marker: str) -> str:
    return text[text.index(marker) :].split("```sh\n", 1)[1].split("```", 1)[0]


def alert_names() -> set[str]:
    """Every alert the platform's PrometheusRule can define (beat on: its alert is one more)."""
    rules = alert_rules("ns", AlertThresholds(), beat_max_interval_seconds=10, worker_containers=["worker"])
    return {r["alert"] for r in rules}


def test_the_docs_have_sh_blocks_to_check() -> None:
    pages = {p.relative_to(ROOT).as_posix() for p in DOC_PAGES if sh_blocks(p)}
    assert {"README.md", "docs/operations/scale.md", "docs/operations/destroy.md", "docs/try-locally.md"} <= pages


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_sh_block_is_run_by_the_engine_test_its_marker_names(page: Path) -> None:
    relative = page.relative_to(ROOT).as_posix()
    for line, test_file in sh_blocks(page):
        assert test_file, f"{relative}:{line}: a ```sh block without `<!-- engine-tested: tests/engine/<file>.py -->`"
        test_path = ROOT / test_file
        assert test_path.is_file(), f"{relative}:{line}: {test_file} does not exist"
        assert relative in test_path.read_text(), f"{relative}:{line}: {test_file} never reads {relative}"


def test_fails_when_an_sh_block_has_no_marker(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# x\n\n```sh\nmake up\n```\n\n<!-- engine-tested: tests/engine/test_x.py -->\n```sh\nls\n```\n")
    assert sh_blocks(page) == [(3, None), (8, "tests/engine/test_x.py")]


def test_every_alert_has_a_runbook_page_and_every_runbook_page_an_alert() -> None:
    pages = {p.stem for p in (ROOT / "docs" / "runbooks").glob("*.md")} - {"index"}
    assert pages == {name.lower() for name in alert_names()}


@pytest.mark.parametrize("alert", sorted(alert_names()))
def test_each_runbook_says_what_the_alert_means_and_the_first_command(alert: str) -> None:
    text = (ROOT / "docs" / "runbooks" / f"{alert.lower()}.md").read_text()
    assert text.startswith(f"# {alert}\n"), alert
    assert "First:" in text and "`kubectl" in text, alert


def test_every_runbook_page_is_in_the_site_navigation() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    runbooks = next(item["Runbooks"] for item in nav if "Runbooks" in item)
    listed = {next(iter(entry.values())) for entry in runbooks}
    assert listed == {f"runbooks/{p.name}" for p in (ROOT / "docs" / "runbooks").glob("*.md")}


def test_the_readme_is_a_short_entry_point_with_the_placeholder_note_first() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < README_MAX_LINES
    assert readme.index("placeholder") < readme.index("## Deploy")
    for page in ("docs/operations/index.md", "docs/configuration.md", "docs/runbooks/index.md", "docs/try-locally.md"):
        assert f"]({page})" in readme, page


def test_the_readmes_deploy_recipe_is_the_docs_deploy_recipe() -> None:
    marker = "<!-- engine-tested: tests/engine/test_readme_walkthrough.py"
    readme = block_after((ROOT / "README.md").read_text(), marker)
    assert readme == block_after((ROOT / "docs" / "deploy.md").read_text(), marker)


def test_mkdocs_strict_mode_fails_on_a_broken_link_or_anchor(tmp_path: Path) -> None:
    """The validation settings that make `make docs` (strict) fail on broken internal links and anchors."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    for kind in ("not_found", "anchors", "absolute_links", "unrecognized_links"):
        assert config["validation"]["links"][kind] == "warn", kind
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[ok](other.md#there) [gone](other.md#nowhere) [missing](missing.md)\n")
    (docs / "other.md").write_text("# Other\n\n## There\n")
    site = {k: v for k, v in config.items() if k not in ("nav",)}
    site.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"))
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(site))
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is not installed in this venv (make setup installs requirements-docs.txt)"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "-f", str(tmp_path / "mkdocs.yml")], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "'other.md#nowhere'" in done.stderr and "'missing.md'" in done.stderr, done.stderr
    assert "other.md#there" not in done.stderr
