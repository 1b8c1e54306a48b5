"""Smoke tests of the cluster tier itself: real admission and real controllers run.

Each test uses its own namespace, so the order of tests does not matter.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

RATIO_MESSAGE = "cpu max limit to request ratio per Container is"


def _namespace(kube_api: KubeAPI, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if labels:
        doc["metadata"]["labels"] = labels
    kube_api.apply([doc])
    kube_api.wait_for_default_service_account(name)
    return name


def _ratio_limit_range(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "cpu-ratio", "namespace": namespace},
        "spec": {"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "1.5"}}]},
    }


def _container(cpu_request: str, cpu_limit: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "image": "registry.invalid/app:1",
        "resources": {"requests": {"cpu": cpu_request}, "limits": {"cpu": cpu_limit}},
        **extra,
    }


def _pod(namespace: str, name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container], **spec},
    }


def _message(exc: ApiException) -> str:
    """The Status message of a rejected request."""
    return str(json.loads(exc.body)["message"])


def _create_pod(kube_api: KubeAPI, pod: dict[str, Any]) -> None:
    client.CoreV1Api(kube_api.api_client).create_namespaced_pod(pod["metadata"]["namespace"], pod)


RESTRICTED_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_rejects_a_pod_whose_cpu_limit_exceeds_the_limit_range_ratio(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "ratio-pod")
    kube_api.apply([_ratio_limit_range(ns)])

    with pytest.raises(ApiException) as rejected:
        _create_pod(kube_api, _pod(ns, "too-bursty", _container("400m", "800m")))

    assert rejected.value.status == 403, rejected.value.body
    assert RATIO_MESSAGE in _message(rejected.value)
    assert "provided ratio is 2.0" in _message(rejected.value)


def test_accepts_a_pod_whose_cpu_ratio_is_within_the_limit_range(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "ratio-ok")
    kube_api.apply([_ratio_limit_range(ns)])

    _create_pod(kube_api, _pod(ns, "within-ratio", _container("400m", "600m")))

    pod = client.CoreV1Api(kube_api.api_client).read_namespaced_pod("within-ratio", ns)
    # ServiceAccount admission ran too: it defaulted the service account.
    assert pod.spec.service_account_name == "default"


def test_fails_when_a_deployment_breaks_the_limit_range_ratio_and_the_replicaset_reports_it(
    kube_api: KubeAPI,
) -> None:
    ns = _namespace(kube_api, "ratio-deploy")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bursty", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "bursty"}},
            "template": {
                "metadata": {"labels": {"app": "bursty"}},
                "spec": {"containers": [_container("400m", "800m")]},
            },
        },
    }
    # The Deployment itself is admitted: the LimitRange only judges Pods.
    kube_api.apply([_ratio_limit_range(ns), deployment])

    core = client.CoreV1Api(kube_api.api_client)
    apps = client.AppsV1Api(kube_api.api_client)
    deadline = time.monotonic() + 90
    events: list[client.CoreV1Event] = []
    while time.monotonic() < deadline:
        events = core.list_namespaced_event(
            ns, field_selector="involvedObject.kind=ReplicaSet,reason=FailedCreate"
        ).items
        if any(RATIO_MESSAGE in (e.message or "") for e in events):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no FailedCreate event naming the ratio; events: {[e.message for e in events]}")

    replicasets = apps.list_namespaced_replica_set(ns).items
    assert len(replicasets) == 1
    owner = replicasets[0].metadata.owner_references[0]
    assert (owner.kind, owner.name) == ("Deployment", "bursty")
    assert core.list_namespaced_pod(ns).items == []


def test_rejects_a_privileged_pod_in_a_namespace_enforcing_the_restricted_profile(
    kube_api: KubeAPI,
) -> None:
    ns = _namespace(kube_api, "restricted", {"pod-security.kubernetes.io/enforce": "restricted"})
    privileged = _container("100m", "100m", securityContext={"privileged": True})

    with pytest.raises(ApiException) as rejected:
        _create_pod(kube_api, _pod(ns, "privileged", privileged))

    assert rejected.value.status == 403, rejected.value.body
    assert 'violates PodSecurity "restricted:latest"' in _message(rejected.value)
    assert 'privileged (container "app" must not set securityContext.privileged=true)' in _message(rejected.value)


def test_accepts_a_pod_that_meets_the_restricted_profile(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "restricted-ok", {"pod-security.kubernetes.io/enforce": "restricted"})
    compliant = _container("100m", "100m", securityContext=RESTRICTED_SECURITY_CONTEXT)

    _create_pod(kube_api, _pod(ns, "compliant", compliant))


def test_rejects_unknown_fields_when_applying_with_strict_validation(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "strict")
    bad = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bad", "namespace": ns},
        "data": {"a": "b"},
        "dta": {"typo": "x"},
    }

    with pytest.raises(ApiException) as rejected:
        kube_api.apply([bad])

    # kube-apiserver answers a schema error in an apply patch with 500 (not 4xx).
    assert rejected.value.status >= 400, rejected.value.body
    assert ".dta: field not declared in schema" in _message(rejected.value)


def test_applies_manifests_idempotently_with_server_side_apply(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "apply")
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"key": "value"},
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "pdb", "namespace": ns},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "x"}}},
        },
    ]

    kube_api.apply(docs)
    kube_api.apply(docs)

    cm = client.CoreV1Api(kube_api.api_client).read_namespaced_config_map("settings", ns)
    assert cm.data == {"key": "value"}
    assert [m.manager for m in cm.metadata.managed_fields] == ["celery-platform"]
