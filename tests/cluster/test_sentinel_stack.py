"""The prod stack with ``broker.type: sentinel``, applied to a real kube-apiserver, and the quota agreement.

The stack is rendered by the CLI from Pulumi.prod.yaml with ``broker: {type: sentinel}`` and four claims
in its quota, in a namespace of its own, and server-side applied with strict field validation. The real
LimitRanger, ResourceQuota and PodSecurity (restricted) plugins then admit every pod of both
StatefulSets, which start in parallel, and the data nodes' claims. Then each agreement case gives a
fresh namespace the same objects under a changed quota or LimitRange (rebuilt by QuotaSpec.hard() /
the Sentinels' container resources), and our preview check (``parse_stack_config``) must refuse
exactly where the API server and its controllers refuse, naming the same workload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from apply_rendered import Observation, finish_render, in_namespace, observe, render_stack, report
from kubernetes.client.rest import ApiException
from kubernetes.utils.quantity import parse_quantity
from test_stacks import Deployed, _limit_range

from celery_platform.builders.admission import pod_totals
from celery_platform.config.guardrails import QuotaSpec
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config
from celery_platform.render.stack_files import stack_config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.kube_testenv import KubeAPI

NAMESPACE = "celery-sentinel"
BROKER = {"type": "sentinel"}
PROD_QUOTA = json.loads(stack_config("prod")[0]["celery-platform:quota"])
QUOTA = {**PROD_QUOTA, "persistentVolumeClaims": 4}
OVERRIDES = {"namespace": NAMESPACE, "broker": json.dumps(BROKER), "quota": json.dumps(QUOTA)}
# Which config field owns which workload, as both sides name them.
OWNERS = {
    "StatefulSet/redis-node": "redis",
    "StatefulSet/redis-sentinel": "broker.sentinel",
    "Deployment/celery-main": "pools[main]",
    "StatefulSet/celery-beat": "beat",
    "Deployment/celery-exporter": "monitoring",
}
SETTLE_S = 0.5


@pytest.fixture(scope="module")
def sentinel_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("sentinel") / "prod.yaml"
    return out, finish_render(render_stack("prod", out, OVERRIDES), out)


@pytest.fixture(scope="module")
def deployed(kube_api: KubeAPI, sentinel_stack: tuple[Path, list[dict[str, Any]]]) -> Deployed:
    path, docs = sentinel_stack
    served = kube_api.apply(docs)
    return Deployed("prod+sentinel", path, docs, served, observe(kube_api.api_client, NAMESPACE, docs))


def _failure(deployed: Deployed) -> str:
    return report(deployed.seen)


def test_every_object_of_the_sentinel_stack_is_stored_as_applied(deployed: Deployed) -> None:
    stored = [(o["kind"], o["metadata"]["name"]) for o in deployed.served]
    assert stored == [(d["kind"], d["metadata"]["name"]) for d in deployed.docs]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in deployed.docs}
    assert {("StatefulSet", "redis-node"), ("StatefulSet", "redis-sentinel"), ("Service", "redis-sentinel")} <= kinds
    assert ("StatefulSet", "redis") not in kinds


def test_admission_creates_every_data_node_and_sentinel_at_once_with_a_claim_per_node(deployed: Deployed) -> None:
    assert deployed.seen.failed_create == [], _failure(deployed)
    nodes = deployed.seen.workloads["StatefulSet/redis-node"]
    sentinels = deployed.seen.workloads["StatefulSet/redis-sentinel"]
    # Parallel: all pods exist although none is ready (no kubelet here); OrderedReady would make only pod-0.
    assert sorted(nodes.pods) == ["redis-node-0", "redis-node-1", "redis-node-2"], _failure(deployed)
    assert sorted(sentinels.pods) == ["redis-sentinel-0", "redis-sentinel-1", "redis-sentinel-2"], _failure(deployed)
    assert sorted(nodes.claims) == [f"data-redis-node-{i}" for i in range(3)], _failure(deployed)
    assert sentinels.claims == [], _failure(deployed)
    assert deployed.seen.problems() == [], _failure(deployed)


def test_the_quota_usage_of_the_sentinel_stack_equals_our_arithmetic(deployed: Deployed) -> None:
    limit_range = _limit_range(deployed)
    expected: dict[str, Decimal] = {}
    for doc in deployed.of_kind("Deployment") + deployed.of_kind("StatefulSet"):
        state = deployed.seen.workloads[f"{doc['kind']}/{doc['metadata']['name']}"]
        for key, amount in pod_totals(doc["spec"]["template"]["spec"], limit_range).items():
            expected[key] = expected.get(key, Decimal(0)) + amount * len(state.pods)
        expected["pods"] = expected.get("pods", Decimal(0)) + len(state.pods)
    # prod: main 3, beat 1, exporter 1, three data nodes and three Sentinels; 3 claims of 5Gi.
    assert expected["pods"] == 11
    expected["persistentvolumeclaims"] = Decimal(3)
    expected["requests.storage"] = Decimal(3 * 5 * 2**30)
    [quota] = deployed.seen.quota.values()
    used = {line: Decimal(str(parse_quantity(value))) for line, (value, _) in quota.items() if line in expected}
    assert used == expected, _failure(deployed)
    assert deployed.seen.over_quota() == [], _failure(deployed)


# --------------------------------------------------------------------------- agreement


Docs = list[dict[str, Any]]


def _sentinel_resources(resources: dict[str, Any]) -> Callable[[Docs], None]:
    def mutate(docs: Docs) -> None:
        [sts] = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis-sentinel"]
        [container] = sts["spec"]["template"]["spec"]["containers"]
        container["resources"] = resources

    return mutate


RATIO_3 = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "150m", "memory": "64Mi"}}
ABOVE_MAX = {"requests": {"cpu": "1500m", "memory": "32Mi"}, "limits": {"cpu": "3", "memory": "64Mi"}}


@dataclass(frozen=True)
class Case:
    """A change to the Sentinel stack, the verdict both sides must give, and where the server says it."""

    name: str
    proves: str
    expect: str  # "accept" or "reject"
    quota: dict[str, Any] = field(default_factory=dict)
    sentinel: dict[str, Any] = field(default_factory=dict)
    mutate: Callable[[Docs], None] | None = None
    ours_field: str = ""
    server_says: str = ""


CASES = [
    Case(
        "claims-2",
        "prod's own quota of 2 claims cannot hold three data nodes' volumes",
        "reject",
        quota={"persistentVolumeClaims": 2},
        ours_field="quota.persistentVolumeClaims",
        server_says="exceeded quota: celery-platform-quota, requested: persistentvolumeclaims=1, "
        "used: persistentvolumeclaims=2, limited: persistentvolumeclaims=2",
    ),
    Case(
        "claims-3",
        "three claims hold exactly one primary and two replicas",
        "accept",
        quota={"persistentVolumeClaims": 3},
    ),
    Case(
        "storage-14Gi",
        "14Gi of storage cannot hold three 5Gi claims",
        "reject",
        quota={"requestsStorage": "14Gi"},
        ours_field="quota.requestsStorage",
        server_says="exceeded quota: celery-platform-quota, requested: requests.storage=5Gi",
    ),
    Case(
        "pods-10",
        "ten pods cannot hold the Celery pods, three data nodes and three Sentinels",
        "reject",
        quota={"pods": 10},
        ours_field="quota.pods",
        server_says="exceeded quota: celery-platform-quota, requested: pods=1",
    ),
    Case(
        "sentinel-ratio-3",
        "a Sentinel limit three times its request breaks prod's ratio 2",
        "reject",
        sentinel={"resources": RATIO_3},
        mutate=_sentinel_resources(RATIO_3),
        ours_field="broker.sentinel.resources.cpu",
        server_says="cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000",
    ),
    Case(
        "sentinel-above-max",
        "a Sentinel limit above prod's max of 2 CPUs",
        "reject",
        sentinel={"resources": ABOVE_MAX},
        mutate=_sentinel_resources(ABOVE_MAX),
        ours_field="broker.sentinel.resources.limits.cpu",
        server_says="maximum cpu usage per Container is 2, but limit is 3",
    ),
]


@dataclass
class Outcome:
    case: Case
    namespace: str
    ours: list[str]
    docs: Docs
    server: list[str] = field(default_factory=list)
    server_owners: set[str] = field(default_factory=set)
    seen: Observation | None = None

    def verdicts(self) -> tuple[str, str]:
        return ("reject" if self.ours else "accept", "reject" if self.server else "accept")


def _ours(case: Case) -> list[str]:
    config, _ = stack_config("prod")
    raw = {key.split(":", 1)[1]: value for key, value in config.items()}
    broker = {**BROKER, **({"sentinel": case.sentinel} if case.sentinel else {})}
    raw.update(namespace=NAMESPACE, broker=json.dumps(broker), quota=json.dumps({**QUOTA, **case.quota}))
    try:
        parse_stack_config(raw)
    except ValidationError as err:
        return [str(p) for p in err.problems]
    return []


def _cluster_docs(case: Case, base: Docs, namespace: str) -> Docs:
    docs = in_namespace(base, namespace)
    for doc in docs:
        if doc["kind"] == "ResourceQuota":
            quota = QuotaSpec(**{_snake(k): v for k, v in {**QUOTA, **case.quota}.items()})
            doc["spec"]["hard"] = quota.hard()
    if case.mutate:
        case.mutate(docs)
    return docs


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@pytest.fixture(scope="module")
def outcomes(kube_api: KubeAPI, sentinel_stack: tuple[Path, Docs]) -> dict[str, Outcome]:
    """Every case judged by both sides, one fresh namespace each, the namespaces settling side by side."""
    _, base = sentinel_stack
    results = {}
    for case in CASES:
        namespace = f"sentinel-{case.name.lower()}"
        results[case.name] = Outcome(case, namespace, _ours(case), _cluster_docs(case, base, namespace))
        try:
            kube_api.apply(results[case.name].docs)
        except ApiException as exc:
            results[case.name].server = [f"apply refused ({exc.status}): {exc.body}"]
    for outcome in results.values():
        if not outcome.server:
            observe(kube_api.api_client, outcome.namespace, outcome.docs, settle_s=0)
    time.sleep(SETTLE_S)  # a refusal's event is written asynchronously
    for outcome in results.values():
        if outcome.server:
            continue
        workloads = [d for d in outcome.docs if d["kind"] in ("Deployment", "StatefulSet")]
        # Again until it settles (every pod, or a refusal): controllers may lag on a loaded machine.
        outcome.seen = observe(kube_api.api_client, outcome.namespace, workloads, timeout_s=120, settle_s=0)
        outcome.server = outcome.seen.failed_create
        outcome.server_owners = {OWNERS[k] for k, s in outcome.seen.workloads.items() if s.failed_create}
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_our_preview_check_refuses_a_sentinel_stack_exactly_where_the_api_server_does(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    o = outcomes[case.name]
    evidence = f"{case.name} ({case.proves}):\n ours: {o.ours}\n server: {o.server}"
    assert o.verdicts() == (case.expect, case.expect), evidence
    if case.expect == "accept":
        assert o.seen is not None and o.seen.problems() == [], report(o.seen) if o.seen else evidence
        return
    assert [p.split(":")[0] for p in o.ours] == [case.ours_field], evidence
    assert any(case.server_says in m for m in o.server), evidence
    if case.mutate is not None:  # a LimitRange refusal is per pod: the server refuses the Sentinels alone
        assert o.server_owners == {"broker.sentinel"}, evidence
    elif "persistentVolumeClaims" in case.quota or "requestsStorage" in case.quota:
        # Only the data nodes claim volumes: only their StatefulSet is refused.
        assert o.server_owners == {"redis"}, evidence


def test_the_sentinel_agreement_table_has_no_disagreement(
    outcomes: dict[str, Outcome], record_property: Callable[[str, str], None]
) -> None:
    width = max(len(name) for name in outcomes)
    lines = [f"{'case':<{width}}  ours    server  what it proves"]
    for o in outcomes.values():
        ours, server = o.verdicts()
        lines.append(f"{o.case.name:<{width}}  {ours:<6}  {server:<6}  {o.case.proves}")
        if o.ours:
            lines.append(f"{'':<{width}}    ours:   {o.ours[0]}")
        if o.server:
            lines.append(f"{'':<{width}}    server: {o.server[0].split('is forbidden: ')[-1][:200]}")
    text = "\n".join(lines)
    record_property("cluster_table", text)
    assert all(len(set(o.verdicts())) == 1 for o in outcomes.values()), text
