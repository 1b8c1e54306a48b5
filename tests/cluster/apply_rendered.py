"""Apply a rendered stack to a Kubernetes API server and report what its admission and controllers made of it.

As a script, independent of the test fixtures (only the kubernetes client and PyYAML)::

    venv/bin/python tests/cluster/apply_rendered.py --kubeconfig KUBECONFIG build/prod.yaml
    venv/bin/python tests/cluster/apply_rendered.py --kubeconfig KUBECONFIG --stack prod

It server-side applies every document in file order (fieldValidation=Strict, force), waits until each
Deployment and StatefulSet has its pods or a FailedCreate event, and prints one line per workload, every
FailedCreate message and every ResourceQuota line. Exit status 1 when a pod was refused, a pod is missing
or a quota line is over its hard limit.

The cluster tests import the same helpers: ``render_stack`` (the render CLI, optionally with overridden
config keys) and ``observe`` (the wait and the report).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, dynamic
from kubernetes.utils.quantity import parse_quantity

from celery_platform.config._yaml import load_yaml
from celery_platform.config.migrate import structured_keys

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "celery-platform"
FIELD_MANAGER = "celery-platform"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


# --------------------------------------------------------------------------- render


def render_stack(
    stack: str, out: Path, overrides: Mapping[str, str] | None = None, root: Path = ROOT
) -> subprocess.Popen[str]:
    """Start ``python -m celery_platform.render <stack> -o <out>``; ``overrides`` replace config keys (short names).

    With overrides, Pulumi.yaml and Pulumi.<stack>.yaml are copied next to ``out`` with the keys replaced,
    and ``infra`` is symlinked, so the program that runs is the repository's own.
    """
    project_dir = root
    if overrides:
        project_dir = out.parent / f"{out.stem}-project"
        project_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "Pulumi.yaml", project_dir / "Pulumi.yaml")
        stack_doc = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
        structured = structured_keys(yaml.safe_load((root / "Pulumi.yaml").read_text())["config"])
        for key, value in overrides.items():
            # A structured key is a YAML object in the stack file; overrides give it as YAML text.
            native = key in structured and isinstance(value, str)
            stack_doc["config"][f"{PROJECT}:{key}"] = load_yaml(value) if native else value
        (project_dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_doc, sort_keys=False))
        if not (project_dir / "infra").exists():
            (project_dir / "infra").symlink_to(root / "infra")
    return subprocess.Popen(
        [sys.executable, "-m", "celery_platform.render", stack, "-o", str(out), "--project-dir", str(project_dir)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_render(proc: subprocess.Popen[str], out: Path, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Wait for a ``render_stack`` process and return the documents it wrote."""
    _, stderr = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"render into {out} failed (exit {proc.returncode}):\n{stderr}")
    return load_documents(out)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path``, in file order."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --------------------------------------------------------------------------- apply


def in_namespace(docs: Sequence[Mapping[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """A deep copy of a render moved to ``namespace``: the Namespace renamed, every other object in it."""
    moved = copy.deepcopy([dict(d) for d in docs])
    for doc in moved:
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = namespace
        else:
            doc["metadata"]["namespace"] = namespace
    return moved


def apply_documents(
    api_client: client.ApiClient, docs: Sequence[Mapping[str, Any]], field_manager: str = FIELD_MANAGER
) -> list[dict[str, Any]]:
    """Server-side apply each document in order (force, fieldValidation=Strict); return the served objects."""
    dyn = dynamic.DynamicClient(api_client)
    served = []
    for doc in docs:
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        result = dyn.server_side_apply(
            resource,
            body=dict(doc),
            namespace=doc["metadata"].get("namespace"),
            field_manager=field_manager,
            force_conflicts=True,
            query_params=[("fieldValidation", "Strict")],
        )
        served.append(result.to_dict())
    return served


def read_object(api_client: client.ApiClient, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The object that ``doc`` names, as the server has it now."""
    dyn = dynamic.DynamicClient(api_client)
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    namespace = doc["metadata"].get("namespace") if resource.namespaced else None
    result: dict[str, Any] = dyn.get(resource, name=doc["metadata"]["name"], namespace=namespace).to_dict()
    return result


# --------------------------------------------------------------------------- observe


@dataclass
class WorkloadState:
    """One Deployment or StatefulSet: the pods it should have now, the pods it has, and its refusals."""

    kind: str
    name: str
    expected_pods: int
    pods: list[str] = field(default_factory=list)
    failed_create: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    expected_claims: int = 0

    @property
    def settled(self) -> bool:
        """Every pod exists, or the controller was refused at least once."""
        return bool(self.failed_create) or len(self.pods) >= self.expected_pods

    @property
    def accepted(self) -> bool:
        """Every pod exists and none was refused."""
        return not self.failed_create and len(self.pods) == self.expected_pods


@dataclass
class Observation:
    """What admission and the controllers made of one namespace's workloads."""

    namespace: str
    workloads: dict[str, WorkloadState]
    failed_create: list[str]
    quota: dict[str, dict[str, tuple[str, str]]]
    """ResourceQuota name -> line -> (used, hard)."""
    replicasets: dict[str, list[str]]
    """Deployment name -> its ReplicaSets."""

    def over_quota(self) -> list[str]:
        """Every quota line whose usage is above its hard limit."""
        return [
            f"{name} {line}: used {used} > hard {hard}"
            for name, lines in self.quota.items()
            for line, (used, hard) in lines.items()
            if parse_quantity(used) > parse_quantity(hard)
        ]

    def problems(self) -> list[str]:
        """Everything that would make this namespace's apply a failed ``pulumi up``."""
        found = [f"FailedCreate: {m}" for m in self.failed_create] + self.over_quota()
        for state in self.workloads.values():
            if len(state.pods) != state.expected_pods:
                found.append(f"{state.kind} {state.name}: {len(state.pods)} pods, expected {state.expected_pods}")
            if len(state.claims) != state.expected_claims:
                found.append(f"{state.kind} {state.name}: {len(state.claims)} claims, expected {state.expected_claims}")
        return found


def expected_pods(doc: Mapping[str, Any]) -> int:
    """Pods the controller creates without nodes: all replicas, but only pod-0 of an OrderedReady StatefulSet.

    Without a kubelet no pod becomes Ready, and OrderedReady waits for pod-0 to be Ready.
    """
    replicas = int(doc["spec"].get("replicas", 1))
    if doc["kind"] == "StatefulSet" and doc["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady":
        return min(replicas, 1)
    return replicas


def _owner(obj: Any) -> tuple[str, str] | None:
    refs = [r for r in obj.metadata.owner_references or [] if r.controller]
    return (refs[0].kind, refs[0].name) if refs else None


def snapshot(api_client: client.ApiClient, namespace: str, workload_docs: Sequence[Mapping[str, Any]]) -> Observation:
    """Read the namespace's ReplicaSets, Pods, PVCs, FailedCreate events and quotas once."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    states = {}
    for doc in workload_docs:
        n = expected_pods(doc)
        claims = len(doc["spec"].get("volumeClaimTemplates") or []) * n if doc["kind"] == "StatefulSet" else 0
        states[f"{doc['kind']}/{doc['metadata']['name']}"] = WorkloadState(
            doc["kind"], doc["metadata"]["name"], n, expected_claims=claims
        )
    rs_owner: dict[str, str] = {}
    replicasets: dict[str, list[str]] = {}
    for rs in apps.list_namespaced_replica_set(namespace).items:
        owner = _owner(rs)
        if owner and owner[0] == "Deployment":
            rs_owner[rs.metadata.name] = f"Deployment/{owner[1]}"
            replicasets.setdefault(owner[1], []).append(rs.metadata.name)
    for pod in core.list_namespaced_pod(namespace).items:
        owner = _owner(pod)
        if owner is None:
            continue
        key = rs_owner.get(owner[1]) if owner[0] == "ReplicaSet" else f"{owner[0]}/{owner[1]}"
        if key in states:
            states[key].pods.append(pod.metadata.name)
    for pvc in core.list_namespaced_persistent_volume_claim(namespace).items:
        for state in states.values():
            if state.kind == "StatefulSet" and any(pvc.metadata.name.endswith(f"-{p}") for p in state.pods):
                state.claims.append(pvc.metadata.name)
    failed = []
    for event in core.list_namespaced_event(namespace, field_selector="reason=FailedCreate").items:
        obj = event.involved_object
        message = f"{obj.kind} {obj.name}: {event.message}"
        failed.append(message)
        key = rs_owner.get(obj.name) if obj.kind == "ReplicaSet" else f"{obj.kind}/{obj.name}"
        if key in states:
            states[key].failed_create.append(event.message or "")
    quota = {
        q.metadata.name: {
            line: ((q.status.used or {}).get(line, "0"), hard) for line, hard in (q.status.hard or {}).items()
        }
        for q in core.list_namespaced_resource_quota(namespace).items
    }
    return Observation(namespace, states, sorted(failed), quota, replicasets)


def observe(
    api_client: client.ApiClient,
    namespace: str,
    docs: Sequence[Mapping[str, Any]],
    timeout_s: float = 30.0,
    settle_s: float = 0.5,
) -> Observation:
    """Wait until every workload of ``docs`` in ``namespace`` has all its pods or a FailedCreate; report.

    ``settle_s`` after that, the namespace is read once more, so that a refusal recorded just after the
    last pod (an event is written asynchronously) is still seen.
    """
    workload_docs = [
        d for d in docs if d["kind"] in WORKLOAD_KINDS and d["metadata"].get("namespace", "default") == namespace
    ]
    deadline = time.monotonic() + timeout_s
    while True:
        seen = snapshot(api_client, namespace, workload_docs)
        quota_ready = all(lines for lines in seen.quota.values())
        claims_ready = all(len(s.claims) >= s.expected_claims or s.failed_create for s in seen.workloads.values())
        if all(s.settled for s in seen.workloads.values()) and quota_ready and claims_ready:
            break
        if time.monotonic() > deadline:
            return seen
        time.sleep(0.2)
    time.sleep(settle_s)
    return snapshot(api_client, namespace, workload_docs)


def report(seen: Observation) -> str:
    """A human-readable summary: workloads, refusals, quota lines."""
    lines = [f"namespace {seen.namespace}"]
    for state in seen.workloads.values():
        verdict = "refused" if state.failed_create else ("ok" if state.accepted else "incomplete")
        claims = f", claims {len(state.claims)}/{state.expected_claims}" if state.expected_claims else ""
        lines.append(
            f"  {state.kind:<12} {state.name:<24} pods {len(state.pods)}/{state.expected_pods}{claims}  {verdict}"
        )
    lines += [f"  FailedCreate {m}" for m in seen.failed_create]
    for name, quota_lines in seen.quota.items():
        for line, (used, hard) in sorted(quota_lines.items()):
            lines.append(f"  quota {name} {line:<24} {used:>8} / {hard}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Apply a rendered stack, wait for the controllers and report; exit 1 on any refusal or shortfall."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--stack", help="render this stack with `python -m celery_platform.render` first")
    parser.add_argument("--field-manager", default=FIELD_MANAGER)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the controllers")
    parser.add_argument("files", nargs="*", type=Path, help="multi-document YAML files, applied in order")
    options = parser.parse_args(argv)
    docs = [d for path in options.files for d in load_documents(path)]
    if options.stack:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{options.stack}.yaml"
            docs += finish_render(render_stack(options.stack, out), out)
    if not docs:
        parser.error("give YAML files or --stack")
    api_client = config.new_client_from_config(config_file=str(options.kubeconfig))
    try:
        apply_documents(api_client, docs, options.field_manager)
        print(f"applied {len(docs)} objects")
        namespaces = sorted({d["metadata"]["namespace"] for d in docs if d["kind"] in WORKLOAD_KINDS})
        problems = []
        for namespace in namespaces:
            seen = observe(api_client, namespace, docs, options.timeout)
            print(report(seen))
            problems += seen.problems()
    finally:
        api_client.close()
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
