"""The workflows keep write and prod credentials away from pull requests, and prod behind its reviewers.

The checker (tests/workflow_safety.py) runs on the repository's workflows, on main's workflows from
before issue 13 (which it must reject), and on small synthetic workflows, one rule at a time.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.workflow_safety import check_workflow, load_workflow, secret_names, triggers

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
BEFORE = Path(__file__).parent / "fixtures" / "workflows_before_issue13"
# main's last commit before issue 13; the fixtures are its preview.yml and deploy.yml, byte for byte.
BEFORE_COMMIT = "f837201"

REVIEWERS_CHECK = {
    "name": "Require reviewers on the production environment",
    "env": {"GH_TOKEN": "${{ github.token }}"},
    "run": 'n="$(gh api "repos/${REPO}/environments/production" --jq '
    '\'[.protection_rules[] | select(.type == "required_reviewers")] | length\')"\n'
    '[ "$n" -ge 1 ] || { echo "::error::no required reviewers"; exit 1; }',
}


def rules(workflow: dict[str, Any], name: str = "w.yml") -> set[str]:
    return {v.rule for v in check_workflow(name, workflow)}


def messages(workflow: dict[str, Any]) -> str:
    return "\n".join(str(v) for v in check_workflow("w.yml", workflow))


def preview_job() -> dict[str, Any]:
    """A pull-request job as preview.yml has it: allowed."""
    return {
        "if": "github.event.pull_request.head.repo.full_name == github.repository",
        "runs-on": "ubuntu-24.04",
        "environment": "preview",
        "permissions": {"contents": "read", "id-token": "write"},
        "env": {"PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"},
        "steps": [
            {"uses": "actions/checkout@v5", "with": {"persist-credentials": False}},
            {"env": {"KUBECONFIG_CONTENT": "${{ secrets.KUBECONFIG_READONLY }}"}, "run": "write-kubeconfig"},
            {"run": "make preview STACK=dev"},
        ],
    }


def deploy_job(stack: str, environment: str | None) -> dict[str, Any]:
    """A deploy job as deploy.yml has it: allowed."""
    job: dict[str, Any] = {
        "if": "github.ref == 'refs/heads/main'",
        "runs-on": "ubuntu-24.04",
        "permissions": {"contents": "read", "id-token": "write", "actions": "read"},
        "concurrency": {"group": f"pulumi-up-{stack}", "cancel-in-progress": False},
        "env": {"PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"},
        "steps": [
            {"uses": "actions/checkout@v5"},
            {"env": {"KUBECONFIG_CONTENT": "${{ secrets.KUBECONFIG_DEPLOY }}"}, "run": "write-kubeconfig"},
            {"run": f"make up STACK={stack}"},
        ],
    }
    if environment:
        job["environment"] = environment
    if stack == "prod":
        job["steps"].insert(0, copy.deepcopy(REVIEWERS_CHECK))
    return job


def workflow(jobs: dict[str, Any], on: Any = "pull_request", permissions: Any = None) -> dict[str, Any]:
    return {
        "on": on,
        "permissions": {"contents": "read"} if permissions is None else permissions,
        "jobs": jobs,
    }


# The repository's workflows, and main's from before issue 13.


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_the_repository_s_workflows_break_no_rule(path: Path) -> None:
    found = check_workflow(path.name, load_workflow(path.read_text()))
    assert not found, "\n".join(map(str, found))


def test_the_checker_rejects_main_s_preview_yml_from_before_issue_13() -> None:
    found = check_workflow("preview.yml", load_workflow((BEFORE / "preview.yml").read_text()))
    text = "\n".join(map(str, found))
    by_rule = {v.rule for v in found}
    # The prod kubeconfig, picked by the matrix, is readable by every same-repository pull request…
    assert re.search(r"\[pr-write-or-prod-secret\].*KUBECONFIG_PROD", text)
    # …as are repository secrets, outside any environment, next to a token that can write PRs.
    assert {"secret-outside-environment", "credentials-with-write-token", "permissions-broad"} <= by_rule
    # …and prod itself is previewed from pull-request code.
    assert "pr-prod-stack" in by_rule


def test_the_checker_rejects_main_s_deploy_yml_from_before_issue_13() -> None:
    found = check_workflow("deploy.yml", load_workflow((BEFORE / "deploy.yml").read_text()))
    by_job = {(v.job, v.rule) for v in found}
    assert ("dev", "deploy-environment") in by_job
    assert ("dev", "secret-outside-environment") in by_job
    assert ("prod", "prod-without-reviewers-check") in by_job


def test_the_fixtures_are_main_s_workflows_from_before_issue_13() -> None:
    # Git's blob ids of .github/workflows/{preview,deploy}.yml at BEFORE_COMMIT: `git hash-object`
    # proves the fixtures are those files byte for byte, without needing that commit in the clone.
    blobs = {
        "preview.yml": "3f121caf9666cbb948432df599c576d394ffbba4",
        "deploy.yml": "066bebf0b13d3e6b09263cb9049836313587ea72",
    }
    for name, blob in blobs.items():
        result = subprocess.run(["git", "hash-object", str(BEFORE / name)], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == blob, name


# What the workflows run is what the engine tier runs.


def _steps(path: Path) -> list[dict[str, Any]]:
    return [s for job in load_workflow(path.read_text())["jobs"].values() for s in job.get("steps", [])]


def test_the_workflows_run_the_makefile_targets_and_nothing_else_of_pulumi() -> None:
    steps = {p.name: _steps(p) for p in WORKFLOWS.glob("*.yml")}
    runs = {name: "\n".join(str(s.get("run", "")) for s in found) for name, found in steps.items()}
    assert "make preview STACK=dev" in runs["preview.yml"]
    assert "make up STACK=dev" in runs["deploy.yml"]
    assert "make preview STACK=prod" in runs["deploy.yml"]
    assert "make up STACK=prod" in runs["deploy.yml"]
    assert 'make drift STACK="${STACK}"' in runs["drift.yml"]
    for name, text in runs.items():
        assert not re.search(r"^\s*pulumi\s", text, re.MULTILINE), f"{name} calls pulumi directly"
    for name, found in steps.items():
        for step in found:
            if str(step.get("uses", "")).startswith("pulumi/actions@"):
                assert "command" not in (step.get("with") or {}), f"{name}: pulumi/actions only installs the CLI"


def test_the_makefile_targets_run_without_a_prompt() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipes = {m.group(1): m.group(2) for m in re.finditer(r"^(preview|up|drift):.*\n\t(.+)$", makefile, re.M)}
    assert recipes["preview"] == "$(PULUMI) preview --stack $(STACK) --non-interactive --diff --policy-pack policy"
    assert recipes["up"] == "$(PULUMI) up --stack $(STACK) --non-interactive --yes --diff --policy-pack policy"
    assert recipes["drift"] == (
        "$(PULUMI) refresh --stack $(STACK) --non-interactive --preview-only --expect-no-changes --diff"
    )


def test_drift_runs_on_a_schedule_for_every_stack() -> None:
    drift = load_workflow((WORKFLOWS / "drift.yml").read_text())
    assert "schedule" in triggers(drift)
    stacks = {entry["stack"]: entry["environment"] for entry in drift["jobs"]["drift"]["strategy"]["matrix"]["include"]}
    assert stacks == {"dev": "preview", "prod": "production-read"}
    assert drift["jobs"]["report"]["strategy"]["matrix"]["stack"] == ["dev", "prod"]


# The rules, one at a time, on synthetic workflows.


def test_a_preview_job_as_preview_yml_has_it_passes() -> None:
    assert check_workflow("w.yml", workflow({"preview": preview_job()})) == []


def test_deploy_jobs_as_deploy_yml_has_them_pass() -> None:
    jobs = {"dev": deploy_job("dev", "dev"), "prod": deploy_job("prod", "production")}
    assert check_workflow("w.yml", workflow(jobs, on={"push": {"branches": ["main"]}})) == []


def test_the_bare_on_key_is_read_as_the_triggers() -> None:
    assert triggers(load_workflow("on: [pull_request, push]\njobs: {}\n")) == {"pull_request", "push"}
    assert triggers(load_workflow("on:\n  pull_request_target:\njobs: {}\n")) == {"pull_request_target"}


def test_secret_names_follow_the_matrix_and_give_up_on_run_time_names() -> None:
    job = {"strategy": {"matrix": {"include": [{"s": "KUBECONFIG_DEV"}, {"s": "KUBECONFIG_PROD"}]}}}
    assert secret_names("${{ secrets[matrix.s] }}", job) == {"KUBECONFIG_DEV", "KUBECONFIG_PROD"}
    assert secret_names("${{ secrets['A'] }} ${{ secrets.B }}", {}) == {"A", "B"}
    assert secret_names("${{ secrets[format('K_{0}', inputs.x)] }}", {}) == {"<dynamic>"}
    assert secret_names("${{ toJSON(secrets) }}", {}) == {"<dynamic>"}
    assert secret_names("echo 'forks get no secrets.'", {}) == set()


@pytest.mark.parametrize("trigger", ["pull_request", "pull_request_target", "workflow_run", "issue_comment"])
def test_fails_when_a_pull_request_job_reads_a_prod_secret(trigger: str) -> None:
    job = preview_job()
    job["env"]["KUBECONFIG"] = "${{ secrets.KUBECONFIG_PROD }}"
    assert "pr-write-or-prod-secret" in rules(workflow({"preview": job}, on=trigger))


def test_fails_when_a_pull_request_job_reads_a_write_secret_even_in_the_preview_environment() -> None:
    job = preview_job()
    job["steps"][1]["env"]["KUBECONFIG_CONTENT"] = "${{ secrets.KUBECONFIG_DEPLOY }}"
    assert "pr-write-or-prod-secret" in rules(workflow({"preview": job}))


def test_fails_when_a_pull_request_job_reads_an_unlisted_secret() -> None:
    job = preview_job()
    job["env"]["SLACK_WEBHOOK"] = "${{ secrets.SLACK_WEBHOOK }}"
    assert "pr-secret" in rules(workflow({"preview": job}))


@pytest.mark.parametrize(
    "expression", ["${{ secrets[format('KUBECONFIG_{0}', matrix.stack)] }}", "${{ toJSON(secrets) }}"]
)
def test_fails_when_a_pull_request_job_reads_secrets_chosen_at_run_time(expression: str) -> None:
    job = preview_job()
    job["env"]["ALL"] = expression
    assert "pr-secret" in rules(workflow({"preview": job}))


def test_fails_when_a_pull_request_job_reads_the_preview_secrets_outside_the_preview_environment() -> None:
    job = preview_job()
    del job["environment"]
    assert {"pr-secret", "secret-outside-environment"} <= rules(workflow({"preview": job}))


@pytest.mark.parametrize("environment", ["production", "dev", {"name": "production"}, "${{ inputs.env }}"])
def test_fails_when_a_pull_request_job_uses_another_environment(environment: Any) -> None:
    job = preview_job()
    job["environment"] = environment
    assert "pr-environment" in rules(workflow({"preview": job}))


@pytest.mark.parametrize(
    "command",
    ["make preview STACK=prod", "pulumi preview --stack prod", "make preview STACK=${{ matrix.stack }}"],
)
def test_fails_when_a_pull_request_job_runs_pulumi_on_prod(command: str) -> None:
    job = preview_job()
    job["strategy"] = {"matrix": {"stack": ["dev", "prod"]}}
    job["steps"][2]["run"] = command
    assert "pr-prod-stack" in rules(workflow({"preview": job}))


@pytest.mark.parametrize("command", ["make up STACK=dev", "pulumi up --yes -s dev", "pulumi refresh --yes -s dev"])
def test_fails_when_a_pull_request_job_writes_with_pulumi(command: str) -> None:
    job = preview_job()
    job["steps"][2]["run"] = command
    assert "pr-deploy" in rules(workflow({"preview": job}))


def test_a_command_in_an_echoed_sentence_is_not_run() -> None:
    job = preview_job()
    job["steps"].append({"run": 'echo "run `make up STACK=prod` after review"'})
    assert check_workflow("w.yml", workflow({"preview": job})) == []


def test_fails_when_a_preview_job_does_not_skip_forks() -> None:
    job = preview_job()
    del job["if"]
    assert rules(workflow({"preview": job})) == {"pr-fork-guard"}


def test_fails_when_pull_request_target_checks_out_code() -> None:
    job = {"runs-on": "x", "permissions": {"pull-requests": "write"}, "steps": [{"uses": "actions/checkout@v5"}]}
    assert "privileged-checkout" in rules(workflow({"notice": job}, on="pull_request_target"))


def test_fails_when_pull_request_target_uses_the_preview_environment() -> None:
    assert "privileged-secret" in rules(workflow({"preview": preview_job()}, on="pull_request_target"))


def test_fails_when_a_secret_is_read_outside_an_environment() -> None:
    job = deploy_job("dev", None)
    assert {"secret-outside-environment", "deploy-environment"} <= rules(workflow({"dev": job}, on="push"))


def test_fails_when_a_workflow_level_env_reads_a_secret() -> None:
    wf = workflow({}, on="push")
    wf["env"] = {"TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    assert rules(wf) == {"secret-outside-environment"}


@pytest.mark.parametrize(
    ("permissions", "rule"),
    [
        ("missing", "permissions-missing"),
        ("write-all", "permissions-broad"),
        ({"contents": "read", "pull-requests": "write"}, "permissions-broad"),
    ],
)
def test_fails_when_the_workflow_s_token_is_not_read_only(permissions: Any, rule: str) -> None:
    wf = workflow({"preview": preview_job()}, permissions=permissions)
    if permissions == "missing":
        del wf["permissions"]
    assert rule in rules(wf)


def test_fails_when_a_job_asks_for_a_write_scope_the_pipeline_does_not_use() -> None:
    job = {"runs-on": "x", "permissions": {"contents": "write"}, "steps": [{"run": "true"}]}
    assert rules(workflow({"j": job}, on="push")) == {"permissions-broad"}


def test_fails_when_a_job_holds_credentials_and_a_token_that_can_write() -> None:
    job = preview_job()
    job["permissions"]["pull-requests"] = "write"
    assert "credentials-with-write-token" in rules(workflow({"preview": job}))


def test_fails_when_oidc_is_requested_without_an_environment() -> None:
    job = {"runs-on": "x", "permissions": {"id-token": "write"}, "steps": [{"run": "true"}]}
    assert rules(workflow({"j": job}, on="push")) == {"oidc-without-environment"}


@pytest.mark.parametrize(("stack", "environment"), [("dev", "production"), ("prod", "dev"), ("prod", "preview")])
def test_fails_when_a_deploy_job_runs_in_the_wrong_environment(stack: str, environment: str) -> None:
    assert "deploy-environment" in rules(workflow({"up": deploy_job(stack, environment)}, on="push"))


def test_fails_when_up_prod_has_no_reviewers_check() -> None:
    job = deploy_job("prod", "production")
    del job["steps"][0]
    assert "prod-without-reviewers-check" in rules(workflow({"up": job}, on="push"))


def test_fails_when_the_reviewers_check_comes_after_up_prod() -> None:
    job = deploy_job("prod", "production")
    job["steps"].append(job["steps"].pop(0))
    assert "prod-without-reviewers-check" in rules(workflow({"up": job}, on="push"))


@pytest.mark.parametrize("escape", [{"if": "github.event_name == 'push'"}, {"continue-on-error": True}])
def test_fails_when_the_reviewers_check_can_be_skipped(escape: dict[str, Any]) -> None:
    job = deploy_job("prod", "production")
    job["steps"][0].update(escape)
    assert "prod-without-reviewers-check" in rules(workflow({"up": job}, on="push"))


def test_fails_when_the_reviewers_check_cannot_read_the_environment() -> None:
    job = deploy_job("prod", "production")
    del job["permissions"]["actions"]
    assert "prod-without-reviewers-check" in rules(workflow({"up": job}, on="push"))


def test_fails_when_pulumi_actions_runs_up_prod_without_the_check() -> None:
    job = deploy_job("prod", "production")
    job["steps"] = [{"uses": "pulumi/actions@v6", "with": {"command": "up", "stack-name": "prod"}}]
    assert "prod-without-reviewers-check" in rules(workflow({"up": job}, on="push"))


def test_fails_when_a_deploy_job_takes_its_stack_from_an_input() -> None:
    job = deploy_job("prod", "production")
    job["steps"][-1]["run"] = "make up STACK=${{ inputs.stack }}"
    assert "deploy-dynamic-stack" in rules(workflow({"up": job}, on="workflow_dispatch"))


def test_fails_when_a_deploy_job_can_be_cancelled_or_run_twice() -> None:
    job = deploy_job("dev", "dev")
    job["concurrency"]["cancel-in-progress"] = True
    assert rules(workflow({"up": job}, on="push")) == {"deploy-concurrency"}
    del job["concurrency"]
    assert rules(workflow({"up": job}, on="push")) == {"deploy-concurrency"}


def test_fails_when_a_deploy_job_is_not_limited_to_main() -> None:
    job = deploy_job("dev", "dev")
    del job["if"]
    assert rules(workflow({"up": job}, on="push")) == {"deploy-branch"}


def test_a_refresh_that_only_previews_is_not_a_deploy() -> None:
    job = deploy_job("dev", "preview")
    job["steps"][-1]["run"] = "pulumi refresh --stack dev --preview-only --expect-no-changes"
    del job["concurrency"]
    assert check_workflow("w.yml", workflow({"drift": job}, on="schedule")) == []
