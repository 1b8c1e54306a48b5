"""Static checks of GitHub Actions workflows: which job can reach which secret, and what a deploy needs.

`check_workflow(name, workflow)` takes one parsed workflow (a dict, as PyYAML loads it) and returns every
violation found; it is a pure function, so it is tested on small synthetic workflows as well as on the
repository's own. The rules encode the pipeline the README's "Adopting the pipeline" sets up:

- a job reachable from a pull request reads no secret except the `preview` environment's read-only
  ones, uses no other environment, writes nothing with Pulumi and touches no prod stack;
- `pull_request_target` (and other triggers that run with the base repository's token on PR activity)
  never checks out code and never reads a secret;
- every secret lives in an environment (repository secrets reach every branch's workflows);
- a job that holds credentials gets no write token scope except `id-token`, workflows grant no write
  scope at the top, and no job gets a write scope the pipeline does not use;
- a job that writes with Pulumi deploys one fixed stack, from main, in that stack's environment, with a
  concurrency group that queues; `up prod` runs only after a step that checks through the GitHub API
  that `production` has required reviewers.

Run as a script, it checks files and exits 1 on any violation: `python -m tests.workflow_safety FILE...`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Triggers under which a pull request (possibly from a fork) decides what runs or when.
PR_TRIGGERS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
    | {"issue_comment", "workflow_run"}
)
# Of those, the ones that run with the base repository's token and secrets, not the PR's.
PRIVILEGED_PR_TRIGGERS = PR_TRIGGERS - {"pull_request", "pull_request_review", "pull_request_review_comment"}

PREVIEW_ENVIRONMENT = "preview"
# The only secrets a pull-request job may read, and only inside the `preview` environment.
PREVIEW_SECRETS = frozenset({"KUBECONFIG_READONLY", "PULUMI_CONFIG_PASSPHRASE"})
TOKEN_SECRETS = frozenset({"GITHUB_TOKEN"})
WRITE_OR_PROD_SECRET = re.compile(r"PROD|DEPLOY|WRITE|ADMIN|PULUMI_ACCESS_TOKEN", re.IGNORECASE)
# The environment that holds each stack's write credentials.
DEPLOY_ENVIRONMENTS = {"dev": "dev", "prod": "production"}
PROD_STACKS = frozenset({"prod", "production"})
# Write scopes the pipeline uses: OIDC, the preview comment, the drift issue.
ALLOWED_WRITE_SCOPES = frozenset({"id-token", "pull-requests", "issues"})

DYNAMIC = "<dynamic>"
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_SECRET_DOT = re.compile(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_-]*)")
_SECRET_INDEX = re.compile(r"\bsecrets\[\s*([^\]]*?)\s*\]")
_SECRETS_WHOLE = re.compile(r"\bsecrets\b(?!\s*[.\[])")
_MATRIX_REF = re.compile(r"^matrix\.([A-Za-z_][A-Za-z0-9_-]*)$")
_QUOTED = re.compile(r"""^(['"])(.*)\1$""")
# Pulumi commands that write state or resources (refresh writes state unless it only previews).
# A command counts where a shell command starts, not inside an echoed sentence.
_COMMAND_START = r"(?:^|[;&|(]|\bthen\b|\bdo\b|\belse\b)\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*"
_WRITE_COMMAND = re.compile(
    _COMMAND_START + r"(?:\bmake\s+(?:[^\n;&|]*\s)?(up|destroy)\b"
    r"|\bpulumi\s+(up|update|destroy|import|cancel|refresh(?![^\n;&|]*--preview-only))\b"
    r"|\bpulumi\s+state\s+(delete|edit|move|rename|unprotect|upgrade)\b)",
    re.MULTILINE,
)
_PULUMI_COMMAND = re.compile(
    _COMMAND_START + r"(?:\bmake\s+(?:[^\n;&|]*\s)?(preview|up|drift|destroy)\b|\bpulumi\s+\w+)", re.MULTILINE
)
_STACK_ARG = re.compile(r"(?:\bSTACK=|--stack[= ]|\s-s\s)\s*(\"[^\"]*\"|'[^']*'|\S+)")
_REVIEWERS_CHECK = re.compile(r"environments/production\b")


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, which rule, and what is wrong."""

    workflow: str
    job: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.workflow}: job {self.job}" if self.job else self.workflow
        return f"{where}: [{self.rule}] {self.message}"


def load_workflow(text: str) -> dict[str, Any]:
    """Parse a workflow; PyYAML reads the bare key `on` as the boolean True, so put it back."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a workflow is a mapping")
    if True in data:
        data["on"] = data.pop(True)
    return data


def triggers(workflow: Mapping[str, Any]) -> frozenset[str]:
    """The event names a workflow runs on (`on` as a string, a list or a mapping)."""
    on = workflow.get("on", workflow.get(True))  # type: ignore[call-overload]
    if isinstance(on, str):
        return frozenset({on})
    if isinstance(on, list):
        return frozenset(str(event) for event in on)
    if isinstance(on, dict):
        return frozenset(str(event) for event in on)
    return frozenset()


def _expressions(node: Any, key: str = "") -> Iterator[str]:
    """The bodies of every `${{ }}` expression in a fragment; an `if:` is an expression as a whole."""
    if isinstance(node, str):
        found = _EXPR.findall(node)
        if found:
            yield from found
        elif key == "if":
            yield node
    elif isinstance(node, dict):
        for child_key, value in node.items():
            yield from _expressions(value, str(child_key))
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def matrix_values(job: Mapping[str, Any], key: str) -> set[str] | None:
    """Every value `matrix.<key>` takes in a job (its list and its `include` entries), or None if unknown."""
    matrix = (job.get("strategy") or {}).get("matrix")
    if not isinstance(matrix, dict):
        return None
    values: set[str] = set()
    listed = matrix.get(key)
    if isinstance(listed, list):
        values.update(str(v) for v in listed)
    elif listed is not None:
        return None  # an expression: cannot be known statically
    for entry in matrix.get("include") or []:
        if isinstance(entry, dict) and key in entry:
            values.add(str(entry[key]))
    return values or None


def resolve(value: str, job: Mapping[str, Any]) -> set[str]:
    """The values a string can take: itself, a matrix expansion of `${{ matrix.x }}`, or DYNAMIC."""
    text = value.strip()
    whole = _EXPR.fullmatch(text)
    if whole is None:
        return {DYNAMIC} if "${{" in text else {text}
    ref = _MATRIX_REF.match(whole.group(1).strip())
    if ref is None:
        return {DYNAMIC}
    return matrix_values(job, ref.group(1)) or {DYNAMIC}


def secret_names(node: Any, job: Mapping[str, Any]) -> set[str]:
    """Names of the secrets a workflow fragment reads; DYNAMIC when the name cannot be known."""
    names: set[str] = set()
    for expression in _expressions(node):
        if "secrets" not in expression:
            continue
        names.update(_SECRET_DOT.findall(expression))
        for index in _SECRET_INDEX.findall(expression):
            quoted = _QUOTED.match(index)
            if quoted:
                names.add(quoted.group(2))
            elif ref := _MATRIX_REF.match(index):
                names.update(matrix_values(job, ref.group(1)) or {DYNAMIC})
            else:
                names.add(DYNAMIC)
        if _SECRETS_WHOLE.search(_SECRET_INDEX.sub("", _SECRET_DOT.sub("", expression))):
            names.add(DYNAMIC)  # e.g. toJSON(secrets): every secret at once
    return names


def environments(job: Mapping[str, Any]) -> set[str]:
    """The environment names a job can run in (empty when it declares none)."""
    env = job.get("environment")
    if env is None:
        return set()
    name = env.get("name") if isinstance(env, dict) else env
    return resolve(str(name), job) if name else {DYNAMIC}


def effective_permissions(workflow: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, str] | None:
    """Scope -> access of the job's token; None when neither the job nor the workflow sets permissions."""
    perms = job["permissions"] if "permissions" in job else workflow.get("permissions")
    if perms is None:
        return None
    if perms in ("write-all", "read-all"):
        return {"*": str(perms).removesuffix("-all")}  # every scope at once
    if isinstance(perms, dict):
        return {str(k): str(v) for k, v in perms.items()}
    return {}


def _write_scopes(perms: Mapping[str, str] | None) -> set[str]:
    return {scope for scope, access in (perms or {}).items() if access == "write"}


def _run_text(step: Mapping[str, Any]) -> str:
    return str(step.get("run") or "")


def _pulumi_action_command(step: Mapping[str, Any]) -> str | None:
    if str(step.get("uses") or "").startswith("pulumi/actions@"):
        command = (step.get("with") or {}).get("command")
        return str(command) if command else None
    return None


def write_stacks(step: Mapping[str, Any], job: Mapping[str, Any]) -> set[str] | None:
    """Stacks a step writes with Pulumi (make up, pulumi up/destroy/refresh…), or None if it writes none."""
    command = _pulumi_action_command(step)
    if command in {"up", "update", "destroy", "refresh"}:
        return resolve(str((step.get("with") or {}).get("stack-name", DYNAMIC)), job)
    text = _run_text(step)
    if not _WRITE_COMMAND.search(text):
        return None
    return _stacks_in(text, step, job)


def pulumi_stacks(step: Mapping[str, Any], job: Mapping[str, Any]) -> set[str]:
    """Stacks any Pulumi command of a step operates on (preview included)."""
    if _pulumi_action_command(step):
        return resolve(str((step.get("with") or {}).get("stack-name", DYNAMIC)), job)
    text = _run_text(step)
    return _stacks_in(text, step, job) if _PULUMI_COMMAND.search(text) else set()


def _stacks_in(text: str, step: Mapping[str, Any], job: Mapping[str, Any]) -> set[str]:
    stacks: set[str] = set()
    for raw in _STACK_ARG.findall(text):
        value = raw.strip("\"'")
        env_ref = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
        if env_ref:  # "${STACK}" set in the step's or the job's env
            env = {**(job.get("env") or {}), **(step.get("env") or {})}
            value = str(env.get(env_ref.group(1), DYNAMIC))
        stacks |= resolve(value, job)
    return stacks or {DYNAMIC}


def _is_checkout(step: Mapping[str, Any]) -> bool:
    return str(step.get("uses") or "").startswith("actions/checkout@")


def _is_reviewers_check(step: Mapping[str, Any]) -> bool:
    text = _run_text(step)
    return (
        "gh api" in text
        and bool(_REVIEWERS_CHECK.search(text))
        and "required_reviewers" in text
        and "exit 1" in text
        and "if" not in step
        and not step.get("continue-on-error")
    )


def _excludes_forks(condition: Any) -> bool:
    text = str(condition or "")
    return bool(
        re.search(r"github\.event\.pull_request\.head\.repo\.full_name\s*==\s*github\.repository", text)
        or re.search(r"github\.event\.pull_request\.head\.repo\.fork\s*==\s*false", text)
    )


def check_workflow(name: str, workflow: Mapping[str, Any]) -> list[Violation]:
    """Every violation of the pipeline's safety rules in one parsed workflow."""
    found: list[Violation] = []

    def flag(job: str, rule: str, message: str) -> None:
        found.append(Violation(name, job, rule, message))

    events = triggers(workflow)
    pr_events = sorted(events & PR_TRIGGERS)
    privileged_events = sorted(events & PRIVILEGED_PR_TRIGGERS)

    top = workflow.get("permissions")
    if top is None:
        flag("", "permissions-missing", "no top-level `permissions`: the default token may be read-write")
    elif top == "write-all" or _write_scopes(effective_permissions(workflow, {})):
        flag(
            "",
            "permissions-broad",
            f"top-level permissions grant write ({top}): grant write scopes to the one job that needs them",
        )
    workflow_secrets = secret_names(workflow.get("env"), {}) - TOKEN_SECRETS
    if workflow_secrets:
        flag("", "secret-outside-environment", f"workflow-level env reads {sorted(workflow_secrets)}")

    for job_id, job in (workflow.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        steps = [s for s in job.get("steps") or [] if isinstance(s, dict)]
        secrets = secret_names(job, job) - TOKEN_SECRETS
        if job.get("secrets") == "inherit":
            secrets.add(DYNAMIC)
        envs = environments(job)
        perms = effective_permissions(workflow, job)
        writes = _write_scopes(perms)

        # Every secret in an environment.
        if secrets and not envs:
            flag(
                job_id,
                "secret-outside-environment",
                f"reads {sorted(secrets)} with no `environment`: repository secrets reach every branch's workflows",
            )
        # Least privilege for the token.
        if writes - ALLOWED_WRITE_SCOPES:
            flag(job_id, "permissions-broad", f"write scopes {sorted(writes - ALLOWED_WRITE_SCOPES)} are not needed")
        if (secrets or envs) and writes - {"id-token"}:
            flag(
                job_id,
                "credentials-with-write-token",
                f"holds credentials and a token that can write {sorted(writes - {'id-token'})}: split the job",
            )
        if "id-token" in writes and not envs:
            flag(job_id, "oidc-without-environment", "id-token: write without an environment in the OIDC subject")

        # Jobs reachable from a pull request.
        if pr_events:
            for secret in sorted(secrets):
                if secret == DYNAMIC:
                    flag(job_id, "pr-secret", f"on {pr_events}: reads secrets chosen at run time")
                elif WRITE_OR_PROD_SECRET.search(secret):
                    flag(job_id, "pr-write-or-prod-secret", f"on {pr_events}: reads the write or prod secret {secret}")
                elif secret not in PREVIEW_SECRETS or envs != {PREVIEW_ENVIRONMENT}:
                    flag(
                        job_id,
                        "pr-secret",
                        f"on {pr_events}: reads {secret}; only {sorted(PREVIEW_SECRETS)} "
                        f"in the `{PREVIEW_ENVIRONMENT}` environment are allowed",
                    )
            if envs - {PREVIEW_ENVIRONMENT}:
                flag(
                    job_id,
                    "pr-environment",
                    f"on {pr_events}: uses environment {sorted(envs)}; only `{PREVIEW_ENVIRONMENT}` is allowed",
                )
            if (envs or secrets) and not _excludes_forks(job.get("if")):
                flag(
                    job_id,
                    "pr-fork-guard",
                    "uses credentials without `if: github.event.pull_request.head.repo.full_name == "
                    "github.repository`: forks get no secrets, so the job can only fail for them",
                )
            for step in steps:
                if write_stacks(step, job) is not None:
                    flag(job_id, "pr-deploy", f"on {pr_events}: writes with Pulumi ({step.get('name') or 'a step'})")
                touched = pulumi_stacks(step, job)
                if touched & (PROD_STACKS | {DYNAMIC}):
                    flag(
                        job_id,
                        "pr-prod-stack",
                        f"on {pr_events}: runs Pulumi on {sorted(touched)}; prod's state and passphrase are prod "
                        "secrets, so prod is previewed only on main",
                    )
        if privileged_events:
            if any(_is_checkout(step) for step in steps):
                flag(
                    job_id,
                    "privileged-checkout",
                    f"on {privileged_events}: checks out code while holding the base repository's token",
                )
            if secrets or envs:
                flag(job_id, "privileged-secret", f"on {privileged_events}: reads secrets or uses an environment")

        # Deploy jobs.
        written: set[str] = set()
        first_write = None
        for index, step in enumerate(steps):
            stacks = write_stacks(step, job)
            if stacks is not None:
                written |= stacks
                first_write = index if first_write is None else first_write
        if not written:
            continue
        if DYNAMIC in written:
            flag(job_id, "deploy-dynamic-stack", "writes a stack chosen at run time: deploy one fixed stack per job")
        for stack in sorted(written - {DYNAMIC}):
            wanted = DEPLOY_ENVIRONMENTS.get(stack)
            if not envs:
                flag(job_id, "deploy-environment", f"deploys {stack} with no `environment`")
            elif wanted is None or envs != {wanted}:
                flag(job_id, "deploy-environment", f"deploys {stack} in {sorted(envs)}; expected `{wanted}`")
        if written & (PROD_STACKS | {DYNAMIC}):
            before = steps[: first_write or 0]
            if not any(_is_reviewers_check(step) for step in before):
                flag(
                    job_id,
                    "prod-without-reviewers-check",
                    "runs `up` on prod with no earlier step that checks through the GitHub API "
                    "(environments/production, required_reviewers) and exits 1 otherwise",
                )
            elif (perms or {}).get("actions") not in {"read", "write"}:
                flag(job_id, "prod-without-reviewers-check", "the reviewers check needs `actions: read`")
        if "refs/heads/main" not in str(job.get("if") or ""):
            flag(job_id, "deploy-branch", "deploys without `if: github.ref == 'refs/heads/main'`")
        concurrency = job.get("concurrency")
        if not isinstance(concurrency, dict) or concurrency.get("cancel-in-progress") is not False:
            flag(
                job_id,
                "deploy-concurrency",
                "needs a concurrency group with cancel-in-progress: false (a cancelled up leaves a lock)",
            )
    return found


def check_files(paths: list[Path]) -> list[Violation]:
    """check_workflow over files."""
    found: list[Violation] = []
    for path in paths:
        found += check_workflow(path.name, load_workflow(path.read_text()))
    return found


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(Path(".github/workflows").glob("*.y*ml"))
    violations = check_files(paths)
    for violation in violations:
        print(violation)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
