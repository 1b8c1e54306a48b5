"""The README's deploy walkthrough, command for command, under the real engine, for each stack file.

The block after the ``engine-tested`` marker in README.md (and the same block in docs/deploy.md, the docs
site's Deploy page) is what a new user types. It runs here
verbatim in a copy of the project (HOME is the test's, so ``file://~/.pulumi-state`` is a temp
backend, and the kube contexts it names point at the test cluster). For prod, it runs as the README
says to: "Repeat with prod". Then ``pulumi up`` must have converged with the provider's await logic
on, a second preview must show no changes, and the outputs must be the README's table.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from kubernetes import client

from tests.engine.conftest import REPO, Project

MARKER = "<!-- engine-tested: tests/engine/test_readme_walkthrough.py"


def walkthrough(stack: str, page: str = "README.md") -> list[str]:
    """The command lines of the README's deploy block, for ``stack`` ("Repeat with prod")."""
    text = (REPO / page).read_text()
    block = text[text.index(MARKER) :].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.splitlines():
        command = line.split("  #", 1)[0].strip()
        if command and not command.startswith("#"):
            lines.append(command)
    if stack != "dev":
        lines = [re.sub(r"\bdev\b", stack, line) for line in lines]
    return lines


def readme_outputs() -> set[str]:
    """The output names in the README's "Stack outputs" table."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("### Stack outputs") :].split("\n## ", 1)[0]
    return {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`(\w+)`", row.split("|")[1])
    }


def test_the_walkthrough_is_the_commands_a_user_needs() -> None:
    commands = walkthrough("dev")
    assert commands[0] == "make venv"
    assert commands[-3:] == ["make preview STACK=dev", "make up STACK=dev", "make drift STACK=dev"]
    assert any(c.startswith("pulumi config set --secret databaseUrl") for c in commands)
    # The docs site's Deploy page shows the same block, so this test runs both.
    assert walkthrough("dev", "docs/deploy.md") == commands


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_readme_walkthrough_deploys_each_stack_and_converges(
    stack: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.engine.conftest import make_project

    project: Project = make_project(
        tmp_path, request.getfixturevalue("toolchain"), request.getfixturevalue("cluster"), login=False
    )
    request.getfixturevalue("shared_venvs")
    del project.env["PULUMI_CONFIG_PASSPHRASE"]  # the walkthrough exports its own
    env_line = next(c for c in walkthrough(stack) if c.startswith("export PULUMI_CONFIG_PASSPHRASE="))
    try:
        # One shell, as a user types it (set -euo pipefail: the first failing command fails the test).
        project.sh("\n".join(walkthrough(stack)), timeout=1800)
        project.env["PULUMI_CONFIG_PASSPHRASE"] = shlex.split(env_line.split("=", 1)[1])[0]

        # The stack file now holds what `stack init` and `config set --secret` wrote: commit it.
        stack_file = project.stack_file(stack)
        assert "encryptionsalt" in stack_file
        assert set(stack_file["config"]["celery-platform:databaseUrl"]) == {"secure"}

        # Converged: a second preview plans nothing, with no ignoreChanges anywhere.
        project.pulumi("preview", "--stack", stack, "--expect-no-changes", "--policy-pack", "policy")

        outputs = json.loads(project.pulumi("stack", "output", "--stack", stack, "--json").stdout)
        assert set(outputs) == readme_outputs()
        assert outputs["brokerUrl"] == "[secret]"
        namespace = outputs["namespace"]
        assert namespace == f"celery-{stack}"
        assert outputs["brokerHost"] == f"redis.{namespace}.svc.cluster.local"

        # Every pod of ours is scheduled on a fake node and ready: the awaits were real.
        pods = client.CoreV1Api(project.api.api_client).list_namespaced_pod(namespace).items
        assert pods and all(p.spec.node_name for p in pods)
        assert all(any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) for p in pods), [
            (p.metadata.name, p.status.phase) for p in pods
        ]
    finally:
        project.pulumi("state", "unprotect", "--stack", stack, "--all", "--yes", check=False)
        project.pulumi("destroy", "--stack", stack, "--yes", check=False, timeout=900)
