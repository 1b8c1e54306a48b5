"""Upgrading a deployed stack from the last release to this code: no replace, no delete, then convergence.

For dev and prod, the last release's tree (``git archive LAST_RELEASE``) brings the stack up as a team
running that release had it: its program, its Pulumi.yaml, its stack file (structured keys as YAML in
strings), the engine tier's secrets setup, and its own package, which a path entry ahead of ./venv's
editable install makes ``celery_platform``. The stack's URNs prove that the old program ran: its five
components were top-level then. Then the stack switches to this code: this Pulumi.yaml and program,
and the same stack file (salt and ``secure:`` values included) converted by ``make migrate-config``.
The state is the same state. ``pulumi preview --json`` must plan no step that replaces or deletes
anything, but for the code ConfigMaps (hooks, exporter) when the release changed the file they
ship; ``make up`` then converges, a second preview plans nothing, and every other object the release
created is still the same object (same id, and for Kubernetes objects the same uid).

Both stacks upgrade at once, on the engine tier's cluster: they share nothing but the backend
directory (one state file each), and most of an ``up`` is waiting on rollouts.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.engine.guide import type_and_name
from tests.kube_testenv import KubeAPI

# The last landed release: the tree whose state a deployed stack holds today. Move it with each release.
LAST_RELEASE = "d910562"

STACKS = ("dev", "prod")
PROJECT = "celery-platform"
# The engine tier's secrets: databaseUrl as every engine test sets it, and the README's optional sentryDsn.
SECRETS = {
    "databaseUrl": "postgresql://app:upgrade-pw-7f3a@db.internal:5432/app",
    "sentryDsn": "https://0123456789abcdef0123@o0.ingest.sentry.io/123",
}
# Parts of the secrets that must never appear in any command's output.
SECRET_TEXTS = ("upgrade-pw-7f3a", "0123456789abcdef0123")
# Every step op that replaces an object or removes one from the stack.
CHURN_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "delete", "discard"})
# The code the platform ships in immutable, auto-named ConfigMaps: a release that changes the file rolls it
# out as a new ConfigMap (created before the old one is deleted; the pods then update to its name). That
# replace is the release's content, not churn, and is allowed for exactly these objects and this reason.
SHIPPED_CODE = frozenset({"celery_platform_hooks.py", "celery_platform_exporter.py"})
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def rolls_shipped_code(step: dict[str, Any]) -> bool:
    """Whether ``step`` replaces a code ConfigMap because, and only because, its shipped file changed."""
    reasons = step.get("replaceReasons") or []
    code_reasons = {f'data["{name}"]' for name in SHIPPED_CODE}
    return (
        step["op"] in {"replace", "create-replacement", "delete-replaced"}
        and type_and_name(step["urn"])[0] == CONFIG_MAP
        and bool(reasons)
        and set(reasons) <= code_reasons
    )


# The release's top-level components (type, name); under CeleryPlatform now, the broker renamed.
COMPONENTS = {
    "celery-platform:index:PlatformNamespace": ("celery-platform", "celery-platform"),
    "celery-platform:index:PlatformSecrets": ("celery-secrets", "celery-secrets"),
    "celery-platform:index:RedisBroker": ("redis", "celery-redis"),
    "celery-platform:index:CeleryWorkers": ("celery", "celery"),
    "celery-platform:index:CeleryMonitoring": ("celery-exporter", "celery-exporter"),
}
PLATFORM = ("celery-platform:index:CeleryPlatform", "celery")


class RecordedProject(Project):
    """A Project whose every command's output is checked for the secrets' plain text."""

    def sh(self, command: str, *, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        proc = super().sh(command, check=False, timeout=timeout)
        leaked = [t for t in SECRET_TEXTS if t in proc.stdout or t in proc.stderr]
        assert not leaked, f"`{command}` printed a secret in plain text"
        if check and proc.returncode != 0:
            pytest.fail(
                f"[{self.dir.name}] `{command}` exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
                f"--- stderr ---\n{proc.stderr[-4000:]}",
                pytrace=False,
            )
        return proc


@dataclass
class Upgrade:
    """What one stack's upgrade planned and how long each phase took."""

    stack: str
    ops: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, phase: str, run: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return run()
        finally:
            self.seconds[phase] = round(time.monotonic() - started, 1)


def materialise_last_release(base: Path) -> tuple[Path, Path]:
    """Extract LAST_RELEASE's tree under ``base``; return it and a path entry whose celery_platform is its package."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", LAST_RELEASE], check=True, capture_output=True
    ).stdout
    tree = base / "last-release"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    # The release mapped components/ to the import name celery_platform (setuptools' package-dir).
    path_entry = base / "last-release-path"
    path_entry.mkdir()
    (path_entry / "celery_platform").symlink_to(tree / "components")
    # Its dependencies are a subset of today's runtime set: the engine tier's ./venv serves both.
    (tree / "venv").symlink_to(REPO / "venv")
    return tree, path_entry


def stack_export(project: Project, stack: str) -> list[dict[str, Any]]:
    out = project.pulumi("stack", "export", "--stack", stack).stdout
    return list(json.loads(out)["deployment"]["resources"])


def components_under(resources: list[dict[str, Any]], parent_type: str) -> set[tuple[str, str]]:
    """(type, name) of each component resource whose parent is of ``parent_type``."""
    return {
        type_and_name(r["urn"])
        for r in resources
        if not r.get("custom") and r.get("parent") and type_and_name(r["parent"])[0] == parent_type
    }


def identities(resources: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(type, id, Kubernetes uid or "") of each managed object -> its URN's name (ids are not printed)."""
    found = {}
    for r in resources:
        if not r.get("custom") or r["type"].startswith("pulumi:providers:"):
            continue
        metadata = (r.get("outputs") or {}).get("metadata")
        uid = metadata.get("uid", "") if isinstance(metadata, dict) else ""
        found[(r["type"], str(r.get("id", "")), str(uid))] = type_and_name(r["urn"])[1]
    return found


def structured_keys(pulumi_yaml: dict[str, Any]) -> set[str]:
    """The keys this Pulumi.yaml declares as an object or an array of objects."""
    keys = set()
    for name, decl in pulumi_yaml.get("config", {}).items():
        items = decl.get("items") if isinstance(decl, dict) else None
        if isinstance(decl, dict) and (
            decl.get("type") == "object" or (decl.get("type") == "array" and (items or {}).get("type") == "object")
        ):
            keys.add(f"{PROJECT}:{name}")
    return keys


def upgrade(stack: str, old: Project, new: Project) -> Upgrade:
    """Bring ``stack`` up with the release, switch it to this code, preview, up, preview again; destroy after."""
    result = Upgrade(stack)
    current = old  # the directory whose stack file holds the stack's salt
    try:
        # 1. The release, as a team has it deployed.
        # The engine tier's init_stack, without selecting the stack: both stacks share the workspace file.
        old.pulumi("stack", "init", "--no-select", stack)
        old.pulumi("config", "set", "kubernetes:context", f"my-{stack}-cluster", "--stack", stack)
        for key, value in SECRETS.items():
            old.pulumi("config", "set", "--secret", key, value, "--stack", stack)
        result.timed("release up", lambda: old.pulumi("up", "--stack", stack, "--yes", "--skip-preview", timeout=1200))
        before = stack_export(old, stack)
        top_level = components_under(before, "pulumi:pulumi:Stack")
        assert top_level == {(t, names[0]) for t, names in COMPONENTS.items()}, "the release's program did not run"

        # 2. This code: its Pulumi.yaml and program, and the team's stack file converted in place.
        old_text = (old.dir / f"Pulumi.{stack}.yaml").read_text()
        (new.dir / f"Pulumi.{stack}.yaml").write_text(old_text)
        current = new
        result.timed("migrate-config", lambda: new.sh(f"make migrate-config STACK={stack}"))
        old_config = yaml.safe_load(old_text)
        migrated = new.stack_file(stack)
        assert migrated["encryptionsalt"] == old_config["encryptionsalt"]
        for key in SECRETS:
            assert migrated["config"][f"{PROJECT}:{key}"] == old_config["config"][f"{PROJECT}:{key}"]
        structured = structured_keys(yaml.safe_load((new.dir / "Pulumi.yaml").read_text()))
        converted = {k for k, v in old_config["config"].items() if k in structured and isinstance(v, str)}
        assert converted, "the release's stack file held no structured key as a string: nothing was migrated"
        for key in converted:
            assert migrated["config"][key] == yaml.safe_load(old_config["config"][key]), key

        # 3. The plan of the switch: nothing replaced, nothing deleted.
        preview = result.timed("preview", lambda: new.pulumi("preview", "--stack", stack, "--json", "--show-sames"))
        steps = json.loads(preview.stdout).get("steps", [])
        result.ops = Counter(s["op"] for s in steps)
        # A step whose state was found under another URN: an alias matched (reported, not required).
        result.ops["(of which aliased)"] = sum(
            1 for s in steps if (s.get("oldState") or {}).get("urn", s["urn"]) != s["urn"]
        )
        churn = [
            f"{s['op']} {s['urn']} replaceReasons={s.get('replaceReasons')} diffReasons={s.get('diffReasons')}"
            for s in steps
            if s["op"] in CHURN_OPS and not rolls_shipped_code(s)
        ]
        rolled = {type_and_name(s["urn"])[1] for s in steps if rolls_shipped_code(s)}
        assert not churn, f"{stack}: the upgrade replaces or deletes:\n" + "\n".join(churn)

        result.timed("up", lambda: new.sh(f"make up STACK={stack}", timeout=1200))
        result.timed("preview after up", lambda: new.pulumi("preview", "--stack", stack, "--expect-no-changes"))
        after = stack_export(new, stack)
        assert components_under(after, "pulumi:pulumi:Stack") == {PLATFORM}
        assert components_under(after, PLATFORM[0]) == {(t, names[1]) for t, names in COMPONENTS.items()}
        # The same objects: each one the release created has its id, and a Kubernetes object its uid.
        kept, now = identities(before), identities(after)
        kept = {key: name for key, name in kept.items() if not (key[0] == CONFIG_MAP and name in rolled)}
        lost = sorted(f"{key[0]}::{name}" for key, name in kept.items() if key not in now)
        assert not lost, f"{stack}: objects of the release are not the same objects after the upgrade: {lost}"
        return result
    finally:
        current.pulumi("state", "unprotect", "--stack", stack, "--all", "--yes", check=False)
        result.timed("destroy", lambda: current.pulumi("destroy", "--stack", stack, "--yes", check=False))
        print(f"upgrade {stack}: ops {dict(sorted(result.ops.items()))}; seconds {result.seconds}")


@pytest.fixture
def projects(tmp_path: Path, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None) -> tuple[Project, Project]:
    made = make_project(tmp_path, toolchain, cluster)
    new = RecordedProject(made.dir, made.env, cluster)
    tree, path_entry = materialise_last_release(tmp_path)
    # The release's package comes first on the language host's path (it inherits the environment).
    old = RecordedProject(tree, {**new.env, "PYTHONPATH": str(path_entry)}, cluster)
    return old, new


def test_upgrading_each_stack_from_the_last_release_replaces_and_deletes_nothing(
    projects: tuple[Project, Project],
) -> None:
    old, new = projects
    started = time.monotonic()
    with ThreadPoolExecutor(len(STACKS)) as pool:
        futures = [pool.submit(upgrade, stack, old, new) for stack in STACKS]
        errors = []
        for future in futures:
            try:
                future.result()
            except BaseException as error:  # pytest.fail raises an OutcomeException, a BaseException
                errors.append(error)
    print(f"upgrade of {', '.join(STACKS)}: {time.monotonic() - started:.0f}s wall")
    if errors:
        raise errors[0]
