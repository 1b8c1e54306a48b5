"""The operations guide's switch of prod from the single Redis to Sentinel, command for command, under the real engine.

docs/operations/sentinel.md has two ``sh`` blocks marked for this test: the switch (quota raised,
``broker.type: sentinel``, ``make preview``, ``make up``) and the check after it (rollout status of both
StatefulSets, a preview, the old volume deleted). A prod stack (Pulumi.prod.yaml as committed) is brought
up with the single Redis as the README says; then each block runs verbatim in the project (HOME is the
test's, the kube context it names points at the test cluster). Just before the switch's ``make preview``
the plan is read as JSON: the single Redis and everything of it are deleted, the Sentinel broker is
created, every Celery workload rolls, and only the platform Secret is replaced. After ``make up`` (the provider's await
logic on, kwok making the pods ready: no Redis process answers) the data nodes and Sentinels are 3/3
ready on the kwok nodes, the old StatefulSet is gone, the workers read the ``sentinel://`` URL from its
Secret, and a second preview plans nothing.

The default spread puts at most one data node per node (``DoNotSchedule`` on the hostname, and the
session's tainted node counts as an empty domain), and the session's cluster has two nodes that prod's
pods may use; so this module adds a third, tainted for prod's dedicated pool, for its own run.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.engine.conftest import NODES, REPO, Project, Toolchain, brought_up, make_project
from tests.engine.guide import marked_blocks, type_and_name
from tests.kube_testenv import KubeAPI

STACK = "prod"
NAMESPACE = "celery-prod"
DATABASE_URL = "postgresql://app:engine-pw@db.internal:5432/app"
GUIDE = REPO / "docs" / "operations" / "sentinel.md"
MARKER = "<!-- engine-tested: tests/engine/test_sentinel_switch.py"
WORKLOADS = (
    ("kubernetes:apps/v1:Deployment", "celery-main"),
    ("kubernetes:apps/v1:StatefulSet", "celery-beat"),
    ("kubernetes:apps/v1:Deployment", "celery-exporter"),
)
# prod's dedicated node pool (Pulumi.prod.yaml tolerates its taint), a third node for the data nodes.
POOL_NODE: dict[str, Any] = {
    **NODES[0],
    "metadata": {
        **NODES[0]["metadata"],
        "name": "kwok-node-celery",
        "labels": {
            **NODES[0]["metadata"]["labels"],
            "kubernetes.io/hostname": "kwok-node-celery",
            "topology.kubernetes.io/zone": "zone-b",
        },
    },
    "spec": {"taints": [{"key": "dedicated", "value": "celery", "effect": "NoSchedule"}]},
}


def guide_blocks() -> list[list[str]]:
    """The command lines of each ``sh`` block that follows this test's marker in the guide."""
    return marked_blocks(GUIDE, MARKER)


def _ready(obj: client.V1StatefulSet | None) -> str:
    return f"{obj.status.ready_replicas or 0}/{obj.spec.replicas}" if obj else "absent"


@pytest.fixture(scope="module")
def pool_node(cluster: KubeAPI) -> Iterator[None]:
    core = client.CoreV1Api(cluster.api_client)
    cluster.apply([POOL_NODE])
    deadline = time.monotonic() + 60
    while not any(
        c.type == "Ready" and c.status == "True" for c in core.read_node("kwok-node-celery").status.conditions or []
    ):
        assert time.monotonic() < deadline, "kwok did not make kwok-node-celery Ready in 60 s"
        time.sleep(0.5)
    yield
    core.delete_node("kwok-node-celery")


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory,
    toolchain: Toolchain,
    cluster: KubeAPI,
    shared_venvs: None,
    pool_node: None,
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("sentinel-switch"), toolchain, cluster)
    # The program is this checkout's for the whole module (as in test_operations_guide.py), so the
    # convergence check compares one program with itself.
    project.env["PYTHONPATH"] = str(REPO / "components")
    with brought_up(project, STACK, DATABASE_URL) as up:
        yield up


def test_the_guide_has_the_switch_and_the_check() -> None:
    switch, check = guide_blocks()
    assert switch[-2:] == [f"make preview STACK={STACK}", f"make up STACK={STACK}"]
    assert f"pulumi config set --path 'broker.type' sentinel --stack {STACK}" in switch
    assert any(line.startswith("pulumi config set --path 'quota.persistentVolumeClaims'") for line in switch)
    assert f"make preview STACK={STACK}" in check
    assert check[-1].endswith("delete pvc data-redis-0")


def test_switching_prod_to_sentinel_follows_the_guide_and_converges(
    deployed: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    switch, check = guide_blocks()
    apps = client.AppsV1Api(deployed.api.api_client)
    core = client.CoreV1Api(deployed.api.api_client)
    assert apps.read_namespaced_stateful_set("redis", NAMESPACE).status.ready_replicas == 1
    assert core.read_namespaced_persistent_volume_claim("data-redis-0", NAMESPACE).status.phase == "Bound"

    started = time.monotonic()
    split = switch.index(f"make preview STACK={STACK}")
    deployed.sh("\n".join(switch[:split]))
    plan = {type_and_name(urn): op for urn, op in deployed.preview_steps(STACK).items()}
    plan.pop(("pulumi:pulumi:Stack", f"celery-platform-{STACK}"), None)
    deployed.sh("\n".join(switch[split:]), timeout=1800)
    switched = time.monotonic() - started

    # The single Redis goes whole, the Sentinel broker comes whole, nothing is replaced in place.
    old = {key: op for key, op in plan.items() if key[1].startswith("celery-redis")}
    new = {key: op for key, op in plan.items() if key[1].startswith("celery-sentinel")}
    assert old and set(old.values()) == {"delete"}, plan
    assert new and set(new.values()) == {"create"}, plan
    for deleted in (
        ("celery-platform:index:RedisBroker", "celery-redis"),
        ("kubernetes:apps/v1:StatefulSet", "celery-redis"),
        ("kubernetes:core/v1:Service", "celery-redis"),
    ):
        assert plan.get(deleted) == "delete", (deleted, plan)
    for created in (
        ("celery-platform:index:SentinelBroker", "celery-sentinel"),
        ("kubernetes:apps/v1:StatefulSet", "celery-sentinel-node"),
        ("kubernetes:apps/v1:StatefulSet", "celery-sentinel-sentinel"),
        ("kubernetes:policy/v1:PodDisruptionBudget", "celery-sentinel-node-pdb"),
        ("kubernetes:policy/v1:PodDisruptionBudget", "celery-sentinel-sentinel-pdb"),
    ):
        assert plan.get(created) == "create", (created, plan)
    for rolled in WORKLOADS:
        assert plan.get(rolled) == "update", (rolled, plan)
    # The platform Secret gains SENTINEL_PASSWORD: the provider replaces an auto-named Secret whose data
    # changes (a new name that the rolled pods read), and nothing else is replaced.
    assert plan.get(("kubernetes:core/v1:Secret", "celery-secrets")) == "replace", plan
    replaced = {key: op for key, op in plan.items() if op not in ("create", "update", "delete")}
    assert replaced == {("kubernetes:core/v1:Secret", "celery-secrets"): "replace"}, plan

    # Converged on the kwok nodes: 3 data nodes and 3 Sentinels ready, each on a node of its own.
    stateful_sets = {s.metadata.name: s for s in apps.list_namespaced_stateful_set(NAMESPACE).items}
    assert "redis" not in stateful_sets, "the single Redis StatefulSet is gone"
    for name in ("redis-node", "redis-sentinel"):
        assert _ready(stateful_sets.get(name)) == "3/3", (name, _ready(stateful_sets.get(name)))
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/instance={name}").items
        hosts = sorted(p.spec.node_name for p in pods)
        assert len(set(hosts)) == 3 and all(h.startswith("kwok-node-") for h in hosts), (name, hosts)
    # Every Celery workload reads the sentinel:// URL from a Secret, and names the master.
    for kind, name in WORKLOADS:
        read = apps.read_namespaced_deployment if kind.endswith("Deployment") else apps.read_namespaced_stateful_set
        env = {e.name: e for e in read(name, NAMESPACE).spec.template.spec.containers[0].env}
        ref = env["CELERY_BROKER_URL"].value_from.secret_key_ref
        value = base64.b64decode(core.read_namespaced_secret(ref.name, NAMESPACE).data[ref.key]).decode()
        assert value.startswith("sentinel://") and "redis-sentinel-0.redis-sentinel-headless" in value, name
        assert env["CELERY_BROKER_SENTINEL_MASTER"].value == "celery", name
        assert env["CELERY_BROKER_SENTINEL_PASSWORD"].value_from.secret_key_ref.key == "SENTINEL_PASSWORD", name

    started = time.monotonic()
    deployed.sh("\n".join(check), timeout=1800)
    checked = time.monotonic() - started
    # kubectl delete waits for the claim to go; no pod uses it since the single Redis went.
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_persistent_volume_claim("data-redis-0", NAMESPACE)
    assert missing.value.status == 404, "the old volume is deleted as the guide says"
    assert deployed.preview_steps(STACK) == {}, "the switch converged: a second preview plans nothing"
    with capsys.disabled():
        print(
            f"\nsentinel switch: preview + up {switched:.1f} s, check block {checked:.1f} s; plan:\n"
            + "\n".join(f"  {op:<7} {kind} {name}" for (kind, name), op in sorted(plan.items(), key=str))
        )
