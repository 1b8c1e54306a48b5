"""Our preview-time admission arithmetic and the real kube-apiserver agree, case by case.

Each case starts from the real prod render. A config case changes stack config keys: our side is
``parse_stack_config`` (what `pulumi preview` runs), the cluster gets the rendered objects with the
LimitRange and ResourceQuota rebuilt from the changed config by the namespace component's own
``to_k8s_limits()`` / ``hard()`` (a config our side refuses cannot be rendered at all). A pod case mutates
the rendered celery-main Deployment: our side is ``check_limit_range``/``check_quota`` on the mutated pod
spec, or the policy pack's ``validate_security_context``. Every case gets a fresh namespace, and the
verdict of the cluster is what admission and the controllers did: a refused apply, or FailedCreate events.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from apply_rendered import Observation, finish_render, in_namespace, observe, read_object, render_stack
from kubernetes.client.rest import ApiException
from kubernetes.utils.quantity import parse_quantity
from pydantic import TypeAdapter

from celery_platform.builders.admission import PodPlan, check_limit_range, check_quota, effective_resources
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config
from celery_platform.render.stack_files import stack_config

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

ROOT = Path(__file__).resolve().parents[2]

STACK = "prod"
SETTLE_S = 0.5
TARGET = "Deployment/celery-main"
OWNERS = {"Deployment/celery-main": "pools[main]", "StatefulSet/celery-beat": "beat", "StatefulSet/redis": "redis"}
PROD_LIMIT_RANGE = """
defaultRequest: {cpu: 100m, memory: 128Mi}
default: {cpu: 150m, memory: 256Mi}
min: {cpu: 10m, memory: 16Mi}
max: {cpu: "2", memory: 4Gi}
maxLimitRequestRatio: {cpu: %s, memory: 2}
"""
PROD_QUOTA = """
requestsCpu: "%s"
requestsMemory: 16Gi
limitsCpu: "16"
limitsMemory: 32Gi
pods: %d
persistentVolumeClaims: 2
requestsStorage: 20Gi
"""


@functools.cache
def _policy() -> ModuleType:
    # policy/ is a Pulumi policy pack directory, not an installed package: load the module by path,
    # or reuse it when the unit tests already did.
    if "celery_guardrails" in sys.modules:
        return sys.modules["celery_guardrails"]
    spec = importlib.util.spec_from_file_location("celery_guardrails", ROOT / "policy" / "celery_guardrails.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["celery_guardrails"] = module
    spec.loader.exec_module(module)
    return module


Docs = list[dict[str, Any]]


def _worker(docs: Docs) -> dict[str, Any]:
    [deployment] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "celery-main"]
    return deployment


def _init(docs: Docs) -> dict[str, Any]:
    [init] = _worker(docs)["spec"]["template"]["spec"]["initContainers"]
    return init


def _container(docs: Docs) -> dict[str, Any]:
    [container] = _worker(docs)["spec"]["template"]["spec"]["containers"]
    return container


def _set_init_resources(resources: dict[str, Any] | None) -> Callable[[Docs], None]:
    def mutate(docs: Docs) -> None:
        if resources is None:
            del _init(docs)["resources"]
        else:
            _init(docs)["resources"] = resources

    return mutate


def _run_as_non_root_false(docs: Docs) -> None:
    _container(docs)["securityContext"]["runAsNonRoot"] = False


def _without_container_security_context(docs: Docs) -> None:
    del _container(docs)["securityContext"]


def _without_pod_security_context(docs: Docs) -> None:
    del _worker(docs)["spec"]["template"]["spec"]["securityContext"]


def _seccomp_only_on_the_pod(docs: Docs) -> None:
    del _container(docs)["securityContext"]["seccompProfile"]


@dataclass(frozen=True)
class Case:
    """One row of the table: a change to the prod stack, what it proves, and the verdict both must give."""

    name: str
    proves: str
    expect: str  # "accept" or "reject"
    side: str  # "config", "limits" or "policy": which of our checks judges it
    overrides: dict[str, str] = field(default_factory=dict)
    mutate: Callable[[Docs], None] | None = None
    server_says: str = ""
    rollout: bool = False


CASES = [
    Case(
        "ratio-1.5",
        "the report's 400m/800m worker (and every ratio-2 pod) is refused by a 1.5 cpu ratio",
        "reject",
        "config",
        {"limitRange": PROD_LIMIT_RANGE % "1.5"},
        # The server stores the ratio 1.5 as the canonical quantity 1500m, and names it so.
        server_says="cpu max limit to request ratio per Container is 1500m, but provided ratio is 2.000000",
    ),
    Case(
        "ratio-2",
        "the same pods are admitted under ratio 2",
        "accept",
        "config",
        {"limitRange": PROD_LIMIT_RANGE % "2"},
    ),
    Case(
        "limit-range-default-above-max",
        "a LimitRange whose default exceeds a tight max is itself refused",
        "reject",
        "config",
        {"limitRange": PROD_LIMIT_RANGE.replace('max: {cpu: "2"', "max: {cpu: 100m") % "2"},
        server_says="default value 150m is greater than max value 100m",
    ),
    Case(
        "quota-pods-4",
        "5 steady pods overflow a quota of 4 pods",
        "reject",
        "config",
        {"quota": PROD_QUOTA % ("8", 4)},
        server_says="exceeded quota: celery-platform-quota, requested: pods=1, used: pods=4, limited: pods=4",
    ),
    Case(
        "quota-requests-cpu-1",
        "1500m of steady requests overflow requests.cpu 1",
        "reject",
        "config",
        {"quota": PROD_QUOTA % ("1", 40)},
        server_says="exceeded quota: celery-platform-quota, requested: requests.cpu=",
    ),
    Case(
        "quota-pods-5-rollout",
        "a quota that fits the steady pods but not the rollout surge: refused at the first rollout",
        "reject",
        "config",
        {"quota": PROD_QUOTA % ("8", 5)},
        server_says="exceeded quota: celery-platform-quota, requested: pods=1, used: pods=5, limited: pods=5",
        rollout=True,
    ),
    Case(
        "init-without-resources",
        "LimitRanger fills an init container's defaults, within max and ratio",
        "accept",
        "limits",
        mutate=_set_init_resources(None),
    ),
    Case(
        "init-only-limit-30m",
        "an unset request defaults to the limit before LimitRanger (not to defaultRequest)",
        "accept",
        "limits",
        mutate=_set_init_resources({"limits": {"cpu": "30m", "memory": "32Mi"}}),
    ),
    Case(
        "init-only-request-50m",
        "an unset limit gets the LimitRange default, which breaks the ratio",
        "reject",
        "limits",
        mutate=_set_init_resources({"requests": {"cpu": "50m", "memory": "32Mi"}}),
        server_says="cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
    ),
    Case(
        "init-limit-above-max",
        "max applies to init containers too",
        "reject",
        "limits",
        mutate=_set_init_resources(
            {"requests": {"cpu": "2", "memory": "32Mi"}, "limits": {"cpu": "3", "memory": "32Mi"}}
        ),
        server_says="maximum cpu usage per Container is 2, but limit is 3",
    ),
    Case(
        "psa-run-as-non-root-false",
        "a container's runAsNonRoot false overrides the pod's true",
        "reject",
        "policy",
        mutate=_run_as_non_root_false,
        server_says='container "worker" must not set securityContext.runAsNonRoot=false',
    ),
    Case(
        "psa-no-container-security-context",
        "without its own securityContext the worker may escalate and keeps capabilities",
        "reject",
        "policy",
        mutate=_without_container_security_context,
        server_says='violates PodSecurity "restricted:latest"',
    ),
    Case(
        "psa-no-pod-security-context",
        "the containers' own securityContexts satisfy restricted without the pod's",
        "accept",
        "policy",
        mutate=_without_pod_security_context,
    ),
    Case(
        "psa-seccomp-only-on-pod",
        "a container inherits the pod's seccompProfile",
        "accept",
        "policy",
        mutate=_seccomp_only_on_the_pod,
    ),
]


@dataclass
class Outcome:
    """Both verdicts of one case, with the evidence."""

    case: Case
    namespace: str
    ours: list[str]
    our_owners: set[str]
    server: list[str] = field(default_factory=list)
    server_owners: set[str] = field(default_factory=set)
    seen: Observation | None = None
    docs: Docs = field(default_factory=list)

    @property
    def our_verdict(self) -> str:
        return "reject" if self.ours else "accept"

    @property
    def server_verdict(self) -> str:
        return "reject" if self.server else "accept"

    @property
    def agree(self) -> bool:
        return self.our_verdict == self.server_verdict


def _raw_config(overrides: dict[str, str]) -> dict[str, str]:
    config, _ = stack_config(STACK, ROOT)
    raw = {key.split(":", 1)[1]: value for key, value in config.items()}
    return {**raw, **overrides}


def _our_config_verdict(case: Case) -> list[str]:
    try:
        parse_stack_config(_raw_config(case.overrides))
    except ValidationError as err:
        return [str(p) for p in err.problems]
    return []


def _limit_range(overrides: dict[str, str]) -> LimitRangeSpec:
    return TypeAdapter(LimitRangeSpec).validate_python(yaml.safe_load(_raw_config(overrides)["limitRange"]))


def _quota(overrides: dict[str, str]) -> QuotaSpec:
    return TypeAdapter(QuotaSpec).validate_python(yaml.safe_load(_raw_config(overrides)["quota"]))


def _plans(docs: Docs) -> list[PodPlan]:
    plans = []
    for doc in docs:
        key = f"{doc['kind']}/{doc['metadata']['name']}"
        if key in OWNERS:
            surge = doc["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", 0)
            plans.append(
                PodPlan(
                    owner=OWNERS[key],
                    replicas=doc["spec"]["replicas"],
                    surge=surge,
                    pod_spec=doc["spec"]["template"]["spec"],
                )
            )
    return plans


def _ours(case: Case, docs: Docs) -> list[str]:
    if case.side == "config":
        return _our_config_verdict(case)
    if case.side == "limits":
        limit_range, plans = _limit_range({}), _plans(docs)
        problems = [p for plan in plans for p in check_limit_range(plan, limit_range)]
        return [str(p) for p in problems + check_quota(plans, _quota({}), limit_range)]
    guardrails = _policy()
    violations = []
    for doc in docs:
        owner = OWNERS.get(f"{doc['kind']}/{doc['metadata']['name']}")
        if owner:
            found = guardrails.validate_security_context(f"kubernetes:apps/v1:{doc['kind']}", doc)
            violations += [f"{owner}.{v}" for v in found]
    return violations


def _cluster_docs(case: Case, base: Docs, namespace: str) -> Docs:
    docs = in_namespace(base, namespace)
    for doc in docs:
        if doc["kind"] == "LimitRange" and "limitRange" in case.overrides:
            doc["spec"]["limits"] = _limit_range(case.overrides).to_k8s_limits()
        if doc["kind"] == "ResourceQuota" and "quota" in case.overrides:
            doc["spec"]["hard"] = _quota(case.overrides).hard()
    if case.mutate:
        case.mutate(docs)
    return docs


def _refusals(seen: Observation) -> tuple[list[str], set[str]]:
    owners = {OWNERS[key] for key, state in seen.workloads.items() if state.failed_create}
    return seen.failed_create, owners


def _roll_out(kube_api: KubeAPI, docs: Docs, namespace: str) -> Observation:
    """Change celery-main's pod template and wait for the new ReplicaSet's surge pod or its refusal."""
    changed = copy.deepcopy(_worker(docs))
    changed["spec"]["template"]["metadata"].setdefault("annotations", {})["agreement/rollout"] = "1"
    kube_api.apply([changed])
    return observe(kube_api.api_client, namespace, [{**changed, "spec": {**changed["spec"], "replicas": 4}}])


@pytest.fixture(scope="module")
def outcomes(kube_api: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case judged by both sides; the cluster cases run side by side, one namespace each."""
    out = tmp_path_factory.mktemp("agreement")
    base_proc = render_stack(STACK, out / f"{STACK}.yaml")
    base = finish_render(base_proc, out / f"{STACK}.yaml")
    results: dict[str, Outcome] = {}
    for case in CASES:
        namespace = f"agree-{case.name.replace('.', '')}"
        docs = _cluster_docs(case, base, namespace)
        ours = _ours(case, docs)
        results[case.name] = Outcome(
            case, namespace, ours, {o for o in OWNERS.values() if any(p.startswith(f"{o}.") for p in ours)}, docs=docs
        )
        try:
            kube_api.apply(docs)
        except ApiException as exc:
            results[case.name].server = [f"apply refused ({exc.status}): {exc.body}"]
    applied = [o for o in results.values() if not o.server]
    for outcome in applied:
        observe(kube_api.api_client, outcome.namespace, outcome.docs, settle_s=0)
    time.sleep(SETTLE_S)  # once for all namespaces: a refusal's event is written asynchronously
    for outcome in applied:
        # Each namespace again until it settles (every pod, or a refusal): on a loaded machine the controllers
        # may lag behind the first pass's 30 s; a settled namespace costs one more read.
        outcome.seen = observe(
            kube_api.api_client, outcome.namespace, _workloads(outcome.docs), timeout_s=120, settle_s=0
        )
        outcome.server, outcome.server_owners = _refusals(outcome.seen)
        if outcome.case.rollout and not outcome.server:
            rolled = _roll_out(kube_api, outcome.docs, outcome.namespace)
            outcome.server = [f"during the rollout: {m}" for m in rolled.failed_create]
    return results


def _workloads(docs: Docs) -> Docs:
    return [d for d in docs if f"{d['kind']}/{d['metadata']['name']}" in OWNERS]


def _gist(message: str) -> str:
    """The reason in a refusal, without the event's and the Status' framing."""
    for marker in ("is forbidden: ", '"message":"'):
        if marker in message:
            message = message.split(marker, 1)[1].split('","reason"')[0]
    return message.replace('\\"', '"')


def _first(messages: list[str], prefer: str = "pools[main].worker") -> str:
    preferred = [m for m in messages if m.startswith(prefer)]
    return _gist((preferred or messages or ["-"])[0])


def table(results: dict[str, Outcome]) -> str:
    """The agreement table: a line per case, then each side's first reason."""
    width = max(len(name) for name in results)
    lines = [f"{'case':<{width}}  ours    server  agree  what it proves"]
    for o in results.values():
        agree = "yes" if o.agree else "NO"
        lines.append(f"{o.case.name:<{width}}  {o.our_verdict:<6}  {o.server_verdict:<6}  {agree:<5}  {o.case.proves}")
        if o.ours or o.server:
            lines.append(f"{'':<{width}}    ours:   {_first(o.ours)}")
            lines.append(f"{'':<{width}}    server: {_first(o.server)}")
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_preview_arithmetic_and_real_admission_give_the_same_verdict(case: Case, outcomes: dict[str, Outcome]) -> None:
    o = outcomes[case.name]
    evidence = f"{case.name} ({case.proves}):\n ours: {o.ours}\n server: {o.server}"
    assert (o.our_verdict, o.server_verdict) == (case.expect, case.expect), evidence
    if case.server_says:
        assert any(case.server_says in m for m in o.server), evidence
    refused_at_apply = bool(o.server) and o.server[0].startswith("apply refused")
    if (case.side != "config" or "limitRange" in case.overrides) and not refused_at_apply:
        assert o.our_owners == o.server_owners, f"both sides must refuse the same workloads\n{evidence}"


def test_the_agreement_table_has_no_disagreement(
    outcomes: dict[str, Outcome], record_property: Callable[[str, str], None]
) -> None:
    text = table(outcomes)
    record_property("cluster_table", text)
    assert all(o.agree for o in outcomes.values()), text


@pytest.mark.parametrize("case", ["init-without-resources", "init-only-limit-30m"])
def test_the_api_server_fills_init_container_resources_exactly_as_our_arithmetic_predicts(
    case: str, kube_api: KubeAPI, outcomes: dict[str, Outcome]
) -> None:
    o = outcomes[case]
    assert o.seen is not None
    [pod_name, *_] = o.seen.workloads[TARGET].pods
    pod = read_object(
        kube_api.api_client,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "namespace": o.namespace}},
    )
    [served] = pod["spec"]["initContainers"]
    requests, limits = effective_resources(_init(o.docs), _limit_range({}))
    got = {
        side: {r: Decimal(str(parse_quantity(v))) for r, v in served["resources"][side].items()}
        for side in ("requests", "limits")
    }
    assert got == {"requests": requests, "limits": limits}


def test_the_limit_range_and_quota_sent_to_the_cluster_are_what_the_program_renders(tmp_path: Path) -> None:
    # A refused config cannot be rendered, so the cases rebuild the guardrails with the namespace component's own
    # to_k8s_limits()/hard(); here an accepted override is rendered for real and must give the same objects.
    case = next(c for c in CASES if c.name == "ratio-2")
    overrides = {**case.overrides, "quota": PROD_QUOTA % ("8", 40)}
    out = tmp_path / "override.yaml"
    rendered = finish_render(render_stack(STACK, out, overrides), out)
    [limit_range] = [d for d in rendered if d["kind"] == "LimitRange"]
    [quota] = [d for d in rendered if d["kind"] == "ResourceQuota"]
    assert limit_range["spec"]["limits"] == _limit_range(overrides).to_k8s_limits()
    assert quota["spec"]["hard"] == _quota(overrides).hard()
