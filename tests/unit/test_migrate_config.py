"""make migrate-config: stack files from before native config become YAML objects, values and comments kept.

The fixtures are the last release's Pulumi.dev.yaml and Pulumi.prod.yaml (commit d910562), whose
structured keys are YAML documents inside strings.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_platform.config._yaml import load_config_value, load_yaml
from celery_platform.config.migrate import MigrationError, main, migrate_text, structured_keys
from celery_platform.config.stack import parse_stack_config
from celery_platform.render.stack_files import _as_config_string, _as_config_value

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = "celery-platform"
DECLARATIONS = load_yaml((ROOT / "Pulumi.yaml").read_text())["config"]
STRUCTURED = structured_keys(DECLARATIONS)
STACKS = ("dev", "prod")
# What a stack initialised with `pulumi stack init` and `pulumi config set --secret` adds, and keys that
# are native already: an object with an encrypted field, another namespace's map.
INITIALISED = """encryptionsalt: v1:c2FsdA==:v1:abc
"""
ADDED = """  celery-platform:databaseUrl:
    secure: v1:ZW5jcnlwdGVkLWRhdGFiYXNlLXVybA==
  # The keepers, native already: `pulumi config set --path 'rotation.redisPassword' 2`.
  celery-platform:rotation:
    redisPassword: 2
  celery-platform:kedaOperator:
    namespace: keda  # ours
    podLabels: {app: keda-operator, token: {secure: v1:bmVzdGVkLXNlY3JldA==}}
  kubernetes:context: my-dev-cluster
  other-project:pools: |
    - stays: a string
"""


def fixture(stack: str) -> str:
    return (FIXTURES / f"Pulumi.{stack}.before-native-config.yaml").read_text()


def project_with(tmp_path: Path, stack: str, text: str | bytes) -> Path:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def comment_lines(text: str) -> list[str]:
    """Every comment of a YAML text, whole-line or trailing, as its text after ``#``."""
    return [m.group(1).strip() for m in re.finditer(r"(?:^|\s)#(.*)$", text, re.MULTILINE)]


def test_the_structured_keys_are_what_pulumi_yaml_declares_as_objects() -> None:
    assert STRUCTURED == {
        "limitRange": "object",
        "quota": "object",
        "taskRoutes": "object",
        "redis": "object",
        "pools": "array<object>",
        "beat": "object",
        "initResources": "object",
        "monitoring": "object",
        "pod": "object",
        "broker": "object",
        "egress": "array<object>",
        "kedaOperator": "object",
        "rotation": "object",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_migrating_the_last_release_keeps_every_value_and_the_key_order(stack: str, tmp_path: Path) -> None:
    path = project_with(tmp_path, stack, fixture(stack))
    code, out, err = run(stack, "--project-dir", str(tmp_path))
    assert (code, err) == (0, "")
    assert f"make migrate-config STACK={stack}: converted " in out
    before = load_yaml(fixture(stack))["config"]
    after = load_yaml(path.read_text())["config"]
    assert list(after) == list(before)
    converted = []
    for key, value in before.items():
        if key.partition(":")[2] in STRUCTURED:
            assert isinstance(value, str), key
            assert after[key] == load_yaml(value), key
            converted.append(key)
        else:
            assert after[key] == value, key
    assert len(converted) >= 6


@pytest.mark.parametrize("stack", STACKS)
def test_the_committed_stack_files_are_the_last_release_migrated(stack: str) -> None:
    migrated = migrate_text(fixture(stack), DECLARATIONS, PROJECT, stack).text
    assert (ROOT / f"Pulumi.{stack}.yaml").read_text() == migrated


@pytest.mark.parametrize("stack", STACKS)
def test_migrating_keeps_every_comment_and_secure_value_and_the_other_keys_bytes(stack: str, tmp_path: Path) -> None:
    # A comment inside a block string becomes a real comment.
    original = fixture(stack).replace("  celery-platform:pools: |\n", "  celery-platform:pools: |\n    # the pools\n")
    text = INITIALISED + original + ADDED
    path = project_with(tmp_path, stack, text)
    assert run(stack, "--project-dir", str(tmp_path))[0] == 0
    new = path.read_text()
    assert sorted(comment_lines(text)) == sorted(comment_lines(new))
    assert "the pools" in comment_lines(new)
    assert load_yaml(new)["config"]["celery-platform:pools"][0]["name"] == "main"
    for secure in re.findall(r"secure: \S+", text):
        assert secure in new
    assert new.startswith(INITIALISED) and new.endswith(ADDED)
    for line in text.splitlines():
        if line.startswith(("  celery-platform:", "  kubernetes:", "  other-project:")) and not line.endswith("|"):
            assert line in new.splitlines(), line


def test_migrating_a_file_with_crlf_line_breaks_writes_crlf_line_breaks_only() -> None:
    old = fixture("dev").replace("\n", "\r\n")
    new = migrate_text(old, DECLARATIONS, PROJECT, "dev").text
    assert new == (ROOT / "Pulumi.dev.yaml").read_text().replace("\n", "\r\n")


@pytest.mark.parametrize("stack", STACKS)
def test_migrating_again_changes_nothing_and_says_so(stack: str, tmp_path: Path) -> None:
    path = project_with(tmp_path, stack, INITIALISED + fixture(stack) + ADDED)
    assert run(stack, "--project-dir", str(tmp_path))[0] == 0
    once = path.read_bytes()
    code, out, err = run(stack, "--project-dir", str(tmp_path))
    assert (code, err, path.read_bytes()) == (0, "", once)
    assert "nothing to change" in out
    assert migrate_text(once.decode(), DECLARATIONS, PROJECT, stack).converted == ()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("|\n    - name: main\n      queues: [default\n", "pools: not valid YAML at line 3, column 1 of its text"),
        ("'name: main'", "pools: its YAML is not 'array<object>' (got a mapping, expected a list of mappings)"),
        (
            "'- just a string'",
            "pools: its YAML is not 'array<object>' (got a list with items that are not mappings",
        ),
        ("''", "pools: its YAML is not 'array<object>' (got nothing, expected a list of mappings)"),
        ("\n    secure: v1:ZW5jcnlwdGVk", "pools: is encrypted as a whole (secure:)"),
    ],
)
def test_fails_when_a_string_is_not_the_declared_shape_and_leaves_the_file_byte_identical(
    tmp_path: Path, value: str, words: str
) -> None:
    # The other keys would convert: nothing is written all the same.
    text = re.sub(r"  celery-platform:pools: \|\n(    .*\n)+", f"  celery-platform:pools: {value}\n", fixture("dev"))
    data = text.encode()
    path = project_with(tmp_path, "dev", data)
    code, out, err = run("dev", "--project-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert words in err and "Pulumi.dev.yaml is unchanged" in err
    assert "ZW5jcnlwdGVk" not in err
    assert path.read_bytes() == data


def test_fails_when_the_stack_file_is_not_yaml_and_leaves_it_byte_identical(tmp_path: Path) -> None:
    data = (fixture("dev") + "  celery-platform:image: [unclosed\n").encode()
    path = project_with(tmp_path, "dev", data)
    code, _, err = run("dev", "--project-dir", str(tmp_path))
    assert code == 2 and "not valid YAML at line" in err
    assert path.read_bytes() == data


def test_check_refuses_the_last_release_with_the_command_and_accepts_the_committed_files(tmp_path: Path) -> None:
    project_with(tmp_path, "dev", fixture("dev"))
    code, out, err = run("--check", "dev", "--project-dir", str(tmp_path))
    assert (code, out) == (2, "")
    for key in ("limitRange", "quota", "pools", "redis", "beat", "egress"):
        assert f"  - {key}: holds YAML in a string" in err and "`make migrate-config STACK=dev` converts" in err
    assert (tmp_path / "Pulumi.dev.yaml").read_text() == fixture("dev")
    for stack in STACKS:
        assert run("--check", stack, "--project-dir", str(ROOT)) == (0, "", "")


def test_check_passes_a_stack_without_a_file_and_migrating_one_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    assert run("--check", "staging", "--project-dir", str(tmp_path)) == (0, "", "")
    code, out, err = run("staging", "--project-dir", str(tmp_path))
    assert (code, out) == (2, "") and "no such stack file" in err and "'staging'" in err


def test_make_migrate_config_converts_and_make_preview_refuses_first(tmp_path: Path) -> None:
    # The Makefile targets a user types; preview must stop at the guard, before any pulumi runs.
    for name in ("Makefile", "Pulumi.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "venv").symlink_to(ROOT / "venv")
    (tmp_path / "Pulumi.dev.yaml").write_text(fixture("dev"))
    (tmp_path / "components").symlink_to(ROOT / "components")
    env = {**os.environ, "PULUMI": "false"}
    guard = subprocess.run(
        ["make", "-s", "-o", "venv/bin/.runtime", "config-native"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert guard.returncode != 0 and "`make migrate-config STACK=dev` converts the file" in guard.stderr
    converted = subprocess.run(
        ["make", "-s", "-o", "venv/bin/.runtime", "migrate-config", "STACK=dev"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "Pulumi.dev.yaml").read_text() == (ROOT / "Pulumi.dev.yaml").read_text()
    guard = subprocess.run(
        ["make", "-s", "-o", "venv/bin/.runtime", "config-native"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert guard.returncode == 0, guard.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_reads_the_engines_json_as_it_read_the_yaml_strings(stack: str) -> None:
    # The engine passes an object key to the program as compact JSON with sorted keys (Go's json.Marshal).
    old = {k.partition(":")[2]: v for k, v in load_yaml(fixture(stack))["config"].items()}
    old["databaseUrl"] = "postgresql://app:pw@db.internal:5432/app"
    new = {
        k: json.dumps(load_yaml(v), sort_keys=True, separators=(",", ":")) if k in STRUCTURED else v
        for k, v in old.items()
    }
    assert new["pools"].startswith('[{"concurrency":')
    assert parse_stack_config(new) == parse_stack_config(old)


def test_the_program_reads_the_engines_json_exactly_even_a_raw_next_line_character() -> None:
    # Go's encoding/json leaves U+0085 raw in a string; read as YAML, it would be a line break folded to a space.
    raw = {
        "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
        "image": "registry.example.com/app:1.0.0",
        "queues": '["default"]',
        "pools": '[{"name":"main","queues":["default"]}]',
        "taskRoutes": '{"app.tasks.a\x85b":"default","app.tasks.\U0007a123":"default"}',
    }
    assert parse_stack_config(raw).task_routes == {"app.tasks.a\x85b": "default", "app.tasks.\U0007a123": "default"}


ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
ENGINE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(ANY_TEXT, ENGINE_VALUES, max_size=4))
def test_the_program_reads_back_every_object_the_render_passes_as_the_engine_does(value: dict[str, Any]) -> None:
    # Every character but a lone surrogate (Go writes none): NEL, U+2028, non-BMP, controls, <>&.
    assert load_config_value(_as_config_string(value)) == _as_config_value(value)


def render(stack: str, project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery_platform.render", stack, "--project-dir", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_fails_when_the_render_meets_a_string_for_an_object_key_and_names_the_command(tmp_path: Path) -> None:
    project_with(tmp_path, "prod", fixture("prod"))
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    result = render("prod", tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert [line.split(":")[0] for line in lines] == [
        f"  - {k}" for k in ("limitRange", "quota", "pools", "redis", "beat", "pod", "egress")
    ]
    assert all("`make migrate-config STACK=prod` converts the file" in line for line in lines)
    assert "missing" not in result.stderr and "Traceback" not in result.stderr


def test_an_object_with_an_encrypted_field_renders_with_a_stand_in_named_at_the_top(tmp_path: Path) -> None:
    # `pulumi config set --secret --path 'kedaOperator.podLabels.app' ...`: the engine decrypts the field
    # and keeps the whole key secret; without the CLI to decrypt, the render stands in for the field.
    keda = "  celery-platform:kedaOperator:\n    podLabels:\n      app:\n        secure: v1:a2VkYS1sYWJlbA==\n"
    project_with(
        tmp_path, "dev", INITIALISED + (ROOT / "Pulumi.dev.yaml").read_text() + ADDED.split("  # The")[0] + keda
    )
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    result = render("dev", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "#   kedaOperator: holds encrypted fields (secure:), stand-ins here" in result.stdout
    assert "a2VkYS1sYWJlbA" not in result.stdout + result.stderr


def test_fails_when_an_object_key_is_encrypted_as_a_whole_and_says_how_to_encrypt_one_field(tmp_path: Path) -> None:
    dev = (ROOT / "Pulumi.dev.yaml").read_text()
    secure = "  celery-platform:redis:\n    secure: v1:cmVkaXM=\n"
    project_with(tmp_path, "dev", INITIALISED + re.sub(r"  celery-platform:redis:\n(    .*\n)+", secure, dev))
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    result = render("dev", tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert "  - redis: is encrypted as a whole (secure:), so it is a string" in result.stderr
    assert "pulumi config set --secret --path 'redis.FIELD' VALUE" in result.stderr
    assert "cmVkaXM" not in result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_render_of_the_last_release_migrated_equals_the_render_of_the_committed_file(
    stack: str, tmp_path: Path
) -> None:
    project_with(tmp_path, stack, fixture(stack))
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    assert run(stack, "--project-dir", str(tmp_path))[0] == 0
    migrated, committed = render(stack, tmp_path), render(stack, ROOT)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == committed.stdout
    assert "kind: Deployment" in migrated.stdout


# Generated structured values: maps and lists nested, scalars of every type, strings that need quoting.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85\ufeff")
    | st.sampled_from("\t\n:#-{}[]'\"\\ &*!|>%@`"),
    max_size=12,
)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | TEXT
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=20
)
OBJECT = st.dictionaries(TEXT, VALUES, max_size=5)
COMMENT = st.none() | st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85\ufeff"), max_size=10
)


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def emit(value: Any, indent: int, comments: Any) -> list[str]:
    """Block YAML of ``value`` with a comment drawn before every entry and after every scalar."""
    pad = " " * indent
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, item in items:
        head = f"{pad}{scalar(key)}:" if isinstance(value, dict) else f"{pad}-"
        note = comments()
        if note is not None:
            lines.append(f"{pad}# {note}")
        if isinstance(item, dict | list) and item:
            lines.append(head)
            lines += emit(item, indent + 2, comments)
        else:
            text = ("{}" if isinstance(item, dict) else "[]") if isinstance(item, dict | list) else scalar(item)
            trailing = comments()
            lines.append(f"{head} {text}" + (f"  # {trailing}" if trailing is not None else ""))
    return lines


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    key=st.sampled_from(sorted(STRUCTURED)),
    block=st.booleans(),
)
def test_migrating_a_string_gives_the_object_it_held_with_its_comments(
    data: st.DataObject, key: str, block: bool
) -> None:
    value = data.draw(OBJECT if STRUCTURED[key] == "object" else st.lists(OBJECT, max_size=3))
    content = "\n".join(emit(value, 0, lambda: data.draw(COMMENT))) + "\n"
    assert load_yaml(content) == (value or None)
    if block and content.strip():
        held = "|\n" + "".join(f"    {line}\n" if line else "\n" for line in content.splitlines())
    else:
        held = json.dumps(content, ensure_ascii=False) + "\n"
    stack = f"config:\n  {PROJECT}:namespace: a\n  {PROJECT}:{key}: {held}  {PROJECT}:image: b\n"
    assert load_yaml(stack)["config"][f"{PROJECT}:{key}"] == content
    if not value and STRUCTURED[key] != "object":  # an empty document is no list
        with pytest.raises(MigrationError):
            migrate_text(stack, DECLARATIONS, PROJECT, "dev")
        return
    migrated = migrate_text(stack, DECLARATIONS, PROJECT, "dev")
    assert migrated.converted == (key,)
    after = load_yaml(migrated.text)["config"]
    assert json.dumps(after[f"{PROJECT}:{key}"]) == json.dumps(value)
    assert after[f"{PROJECT}:namespace"] == "a" and after[f"{PROJECT}:image"] == "b"
    assert sorted(comment_lines(content)) == sorted(c for c in comment_lines(migrated.text))
    assert migrate_text(migrated.text, DECLARATIONS, PROJECT, "dev").text == migrated.text
