"""The render as a reviewer reads it: block literals, a render-only note, YAML from make, a diff per object."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_platform.builders.probes import HOOKS_FILENAME, hooks_source
from celery_platform.render import render_documents, to_yaml
from celery_platform.render.output import HEADER, diff_documents, dump_documents

ROOT = Path(__file__).resolve().parents[2]


def render_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery_platform.render", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_hooks_config_map_reads_as_python_line_by_line() -> None:
    text = to_yaml(render_documents("dev"))
    source = hooks_source()
    indented = "".join(f"    {line}" if line.strip() else line for line in source.splitlines(keepends=True))
    assert f"  {HOOKS_FILENAME}: |\n{indented}" in text
    quoted = [
        event.value
        for event in yaml.parse(text)
        if isinstance(event, yaml.ScalarEvent) and event.style in ('"', "'") and "\n" in event.value
    ]
    assert quoted == [], "no multi-line string is left quoted and escaped"


def test_the_render_says_at_the_top_that_auto_name_suffixes_are_render_only() -> None:
    text = render_cli("dev").stdout
    assert text.startswith(HEADER)
    assert "random" in HEADER and "render-only" in HEADER.lower()


# A property of the output, not of its speed: no deadline, since the tiers run side by side.
@settings(deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=40), max_size=4))
def test_any_string_survives_the_dump_exactly(values: list[str]) -> None:
    documents: list[dict[str, Any]] = [{"kind": "ConfigMap", "data": {f"k{i}": v for i, v in enumerate(values)}}]
    assert list(yaml.safe_load_all(dump_documents(documents))) == documents


def test_multi_line_strings_with_trailing_spaces_or_blank_ends_round_trip() -> None:
    documents = [{"data": {"a": "x  \ny", "b": "\n\nlead\n\n", "c": "  indented\nnext", "d": "tab\there\n"}}]
    assert list(yaml.safe_load_all(dump_documents(documents))) == documents


def test_make_render_writes_only_yaml_to_stdout() -> None:
    # As from a shell: under `make test`, these would make this make a sub-make that names its directory.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    done = subprocess.run(
        ["make", "render", "STACK=dev"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_cli("dev").stdout
    assert next(yaml.safe_load_all(done.stdout))["kind"] == "Namespace"


def _changed(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_the_diff_shows_each_changed_object_once_keyed_by_kind_namespace_and_name() -> None:
    base = render_cli("dev").stdout
    head = _changed(base, "--concurrency\n        - '2'", "--concurrency\n        - '3'")
    diff = diff_documents(base, head)
    assert diff.count("### ") == 1
    assert "### Deployment celery-dev/celery-io (changed)" in diff
    assert "-        - '2'\n+        - '3'\n" in diff
    assert diff_documents(base, base) == ""


def test_the_diff_reports_added_and_removed_objects() -> None:
    one = dump_documents([{"kind": "Namespace", "metadata": {"name": "a"}}])
    two = dump_documents([{"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}, "data": {"x": "1"}}])
    diff = diff_documents(one, two)
    assert "### ConfigMap a/c (added)" in diff and "### Namespace a (removed)" in diff


def test_the_cli_diffs_against_an_earlier_render_and_exits_1_when_an_object_changed(tmp_path: Path) -> None:
    earlier = tmp_path / "dev.main.yaml"
    earlier.write_text(_changed(render_cli("dev").stdout, "maxmemory-policy", "maxmemory-policy-was"))
    changed = render_cli("dev", "--diff", str(earlier))
    assert changed.returncode == 1, changed.stderr
    assert changed.stdout.startswith("### ") and "maxmemory-policy-was" in changed.stdout
    earlier.write_text(render_cli("dev").stdout)
    same = render_cli("dev", "--diff", str(earlier))
    assert (same.returncode, same.stdout) == (0, "")


@pytest.mark.parametrize("kind", ["missing", "a folder", "not UTF-8"])
def test_fails_when_the_diff_file_cannot_be_read_with_one_line_and_no_traceback(tmp_path: Path, kind: str) -> None:
    other = tmp_path / "earlier.yaml"
    if kind == "a folder":
        other.mkdir()
    elif kind == "not UTF-8":
        other.write_bytes(b"\xff\xfe kind: Secret")
    refused = render_cli("dev", "--diff", str(other))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert f"error: --diff {other}: cannot read it" in refused.stderr
    assert refused.stdout == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: [unclosed\n", "not YAML at line 2, column 1: expected ',' or ']'"),
        ("- 1\n- 2\n", "document 1 is not a Kubernetes object"),
        ("kind: Namespace\nmetadata: {name: a}\n---\njust text\n", "document 2 is not a Kubernetes object"),
        ("kind: ConfigMap\nmetadata: [a]\n", "document 1 is not a Kubernetes object"),
    ],
)
def test_fails_when_the_diff_file_is_not_a_render_with_one_line_and_no_traceback(
    tmp_path: Path, text: str, reason: str
) -> None:
    other = tmp_path / "earlier.yaml"
    other.write_text(text)
    refused = render_cli("dev", "--diff", str(other))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(f"error: --diff {other}: {reason}"), refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_the_diff_of_the_missing_file_the_issue_names_is_one_clean_error() -> None:
    refused = render_cli("dev", "--diff", "/missing.yaml")
    assert refused.returncode == 2
    assert refused.stderr == (
        "error: --diff /missing.yaml: cannot read it (No such file or directory); give an earlier render's YAML\n"
    )
