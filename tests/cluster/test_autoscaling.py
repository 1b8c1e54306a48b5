"""The dev stack with both pools autoscaled, applied to a real kube-apiserver that has KEDA's CRDs.

KEDA's CRDs come from KEDA's own Go module (tools/keda/build.sh), the version our scaler test links.
Strict field validation stores the ScaledObjects and the TriggerAuthentication exactly as rendered,
and refuses a misspelled field, so the CRDs' schema is really in force. The autoscaled Deployments
carry no replicas of ours (the API server defaults them to 1 until KEDA's HPA takes over), and the
admission arithmetic at maxReplicas plus surge is what a full scale-up meets.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from apply_rendered import finish_render, observe, read_object, render_stack, report
from kubernetes import client
from kubernetes.client.rest import ApiException

from celery_platform.config.autoscaling import (
    API_VERSION,
    PRIORITY_SEP,
    AutoscalingSpec,
    BrokerAuth,
    SentinelTarget,
    scaled_object_spec,
    trigger_authentication_spec,
)
from celery_platform.config.specs import PoolSpec
from tests.keda_tools import keda_crds
from tests.operator_crds import install_crds

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "celery-scaled"
MAX_REPLICAS = 3


def _pools() -> list[dict[str, object]]:
    pools: list[dict[str, object]] = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"][
        "celery-platform:pools"
    ]
    for pool in pools:
        del pool["replicas"]
        pool["autoscaling"] = {"minReplicas": 0, "maxReplicas": MAX_REPLICAS}
    return pools


@pytest.fixture(scope="module")
def scaled(kube_api: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], KubeAPI]:
    install_crds(kube_api, keda_crds())
    out = tmp_path_factory.mktemp("scaled") / "dev.yaml"
    docs = finish_render(render_stack("dev", out, {"namespace": NAMESPACE, "pools": _pools()}), out)
    kube_api.apply(docs)
    return docs, kube_api


def test_the_keda_objects_are_stored_exactly_as_rendered(scaled: tuple[list[dict[str, Any]], KubeAPI]) -> None:
    docs, api = scaled
    keda = [d for d in docs if d["apiVersion"] == "keda.sh/v1alpha1"]
    assert sorted(d["kind"] for d in keda) == ["ScaledObject", "ScaledObject", "TriggerAuthentication"]
    for doc in keda:
        stored = read_object(api.api_client, doc)
        assert stored["spec"] == doc["spec"], doc["metadata"]["name"]
    lists = {t["metadata"]["listName"] for d in keda if d["kind"] == "ScaledObject" for t in d["spec"]["triggers"]}
    assert f"default{PRIORITY_SEP}9" in lists


def test_the_server_refuses_a_misspelled_scaled_object_field(scaled: tuple[list[dict[str, Any]], KubeAPI]) -> None:
    docs, api = scaled
    [first, *_] = [d for d in docs if d["kind"] == "ScaledObject"]
    bad = {**first, "spec": {**first["spec"], "maxReplicas": 3}}
    with pytest.raises(ApiException) as refused:
        api.apply([bad])
    assert "maxReplicas" in str(refused.value.body), refused.value.body


def test_autoscaled_deployments_carry_no_replicas_of_ours_and_every_pod_is_admitted(
    scaled: tuple[list[dict[str, Any]], KubeAPI],
) -> None:
    docs, api = scaled
    workers = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] != "celery-exporter"]
    assert workers and all("replicas" not in d["spec"] for d in workers)
    seen = observe(api.api_client, NAMESPACE, docs)
    assert seen.failed_create == [], report(seen)


def test_a_full_scale_up_to_max_replicas_is_admitted_by_the_quota(scaled: tuple[list[dict[str, Any]], KubeAPI]) -> None:
    docs, api = scaled
    apps = client.AppsV1Api(api.api_client)
    workers = [
        d["metadata"]["name"] for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] != "celery-exporter"
    ]
    for name in workers:
        # What KEDA's HPA does: the scale subresource, under the controller manager's field manager.
        apps.patch_namespaced_deployment_scale(
            name, NAMESPACE, {"spec": {"replicas": MAX_REPLICAS}}, field_manager="kube-controller-manager"
        )
    at_max = [
        {**d, "spec": {**d["spec"], "replicas": MAX_REPLICAS}} if d["metadata"]["name"] in workers else d for d in docs
    ]
    seen = observe(api.api_client, NAMESPACE, at_max)
    assert seen.failed_create == [] and seen.over_quota() == [], report(seen)
    for name in workers:
        assert len(seen.workloads[f"Deployment/{name}"].pods) == MAX_REPLICAS, report(seen)
    # And to zero: the PodDisruptionBudget (maxUnavailable 1) stays valid with no pod at all.
    for name in workers:
        apps.patch_namespaced_deployment_scale(
            name, NAMESPACE, {"spec": {"replicas": 0}}, field_manager="kube-controller-manager"
        )
    policy = client.PolicyV1Api(api.api_client)
    for name in workers:
        pdb = policy.read_namespaced_pod_disruption_budget(f"{name}-pdb", NAMESPACE)
        assert pdb.spec.max_unavailable == 1 and pdb.spec.min_available is None


def test_a_redis_sentinel_scaled_object_and_its_sentinel_password_auth_are_stored_exactly_as_built(
    scaled: tuple[list[dict[str, Any]], KubeAPI],
) -> None:
    _, api = scaled
    scaling = AutoscalingSpec(max_replicas=MAX_REPLICAS)
    pool = PoolSpec(name="sentinel", queues=("default", "high"), autoscaling=scaling)
    sentinels = ",".join(f"redis-node-{i}.redis-sentinel.{NAMESPACE}.svc.cluster.local:26379" for i in range(3))
    auth = BrokerAuth(
        password=("celery-redis", "REDIS_PASSWORD"), sentinel_password=("celery-redis", "SENTINEL_PASSWORD")
    )
    meta = {"namespace": NAMESPACE}
    docs = [
        {
            "apiVersion": API_VERSION,
            "kind": "TriggerAuthentication",
            "metadata": {"name": "celery-sentinel-auth", **meta},
            "spec": trigger_authentication_spec(auth),
        },
        {
            "apiVersion": API_VERSION,
            "kind": "ScaledObject",
            "metadata": {"name": "celery-sentinel", **meta},
            "spec": scaled_object_spec(
                "celery-sentinel",
                pool,
                database=0,
                tls=False,
                auth_name="celery-sentinel-auth",
                sentinel=SentinelTarget(master_name="celery", addresses=sentinels),
            ),
        },
    ]
    api.apply(docs)
    for doc in docs:
        assert read_object(api.api_client, doc)["spec"] == doc["spec"], doc["metadata"]["name"]
    stored = read_object(api.api_client, docs[1])["spec"]["triggers"]
    assert {t["type"] for t in stored} == {"redis-sentinel"} and len(stored) == 8
    assert all("address" not in t["metadata"] and t["metadata"]["addresses"] == sentinels for t in stored)
    refs = read_object(api.api_client, docs[0])["spec"]["secretTargetRef"]
    assert {"parameter": "sentinelPassword", "name": "celery-redis", "key": "SENTINEL_PASSWORD"} in refs
