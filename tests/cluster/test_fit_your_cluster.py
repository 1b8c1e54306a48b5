"""The prod stack with every "fit your cluster" field set, applied to a real kube-apiserver.

Strict field validation stores every object as rendered; the real admission plugins (ServiceAccount,
Priority, LimitRanger, ResourceQuota, PodSecurity restricted) admit every pod. The stack uses an
external broker over TLS, so it runs no Redis of its own. Its own namespace keeps it apart from the
per-stack tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from apply_rendered import finish_render, observe, render_stack, report

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

NAMESPACE = "celery-fit"
POD = {
    "serviceAccount": {
        "create": True,
        "name": "celery-app",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/celery"},
        "automountToken": True,
    },
    "imagePullSecrets": ["ghcr-pull"],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "celery", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["celery"]}]},
                }
            ]
        }
    },
    "priorityClassName": "celery-high",
    "topologySpread": [
        {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 2, "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "annotations": {"prometheus.io/scrape": "true"},
    "labels": {"team": "payments"},
    "env": [
        {"name": "SMTP_HOST", "value": "smtp.example.com"},
        {"name": "SMTP_PASSWORD", "secretKeyRef": {"name": "smtp", "key": "password"}},
        {"name": "FEATURE_FLAGS", "configMapKeyRef": {"name": "flags", "key": "all", "optional": True}},
    ],
    "envFrom": [{"configMap": "app-config", "prefix": "APP_", "optional": True}, {"secret": "app-secrets"}],
    "volumes": [
        {"name": "smtp-ca", "secret": "smtp-ca"},
        {"name": "settings", "configMap": "app-settings"},
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "shared", "persistentVolumeClaim": "shared-files"},
    ],
    "volumeMounts": [
        {"name": "smtp-ca", "mountPath": "/etc/smtp"},
        {"name": "settings", "mountPath": "/etc/app/settings.yaml", "subPath": "settings.yaml"},
        {"name": "scratch", "mountPath": "/scratch", "readOnly": False},
        {"name": "shared", "mountPath": "/srv/shared"},
    ],
    "pythonPath": ["/app", "/app/src"],
}
POOLS = [
    {
        "name": "main",
        "queues": ["default", "high", "low", "email", "reports", "media", "webhooks", "maintenance"],
        "replicas": 2,
        "concurrency": 4,
        "logLevel": "WARNING",
        "extraArgs": ["--max-tasks-per-child=500", "--time-limit=900"],
        "resources": {"requests": {"cpu": "400m", "memory": "512Mi"}, "limits": {"cpu": "800m", "memory": "1Gi"}},
    },
    {
        "name": "io",
        "queues": ["io"],
        "poolType": "threads",
        "concurrency": 16,
        "pod": {"tolerations": [], "serviceAccount": {"name": "celery-app"}, "topologySpread": []},
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "400m", "memory": "512Mi"}},
    },
]
BROKER = {
    "type": "external",
    "external": {
        "urlSecret": {"name": "managed-redis", "key": "url"},
        "host": "master.celery.abc123.use1.cache.amazonaws.com",
        "port": 6380,
        "tls": True,
        "caSecret": {"name": "managed-redis-ca", "key": "ca.crt"},
        "cidr": "10.30.0.0/16",
    },
}
OVERRIDES: dict[str, Any] = {
    "namespace": NAMESPACE,
    "queues": [*POOLS[0]["queues"], "io"],
    "pod": yaml.safe_dump(POD),
    "pools": yaml.safe_dump(POOLS),
    "beat": yaml.safe_dump({"logLevel": "DEBUG", "pod": {"annotations": {"role": "scheduler"}}}),
    "broker": yaml.safe_dump(BROKER),
    "egress": yaml.safe_dump([{"cidr": "10.20.0.0/16", "ports": [5432]}, {"cidr": "0.0.0.0/0", "ports": [443]}]),
}
PRIORITY_CLASS = {
    "apiVersion": "scheduling.k8s.io/v1",
    "kind": "PriorityClass",
    "metadata": {"name": "celery-high"},
    "value": 1000,
    "description": "Celery workers (fit-your-cluster test).",
}


@pytest.fixture(scope="module")
def fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("fit") / "prod-fit.yaml"
    return out, finish_render(render_stack("prod", out, OVERRIDES), out)


def test_the_render_uses_every_new_field(fit: tuple[Path, list[dict[str, Any]]]) -> None:
    _, docs = fit
    kinds = {d["kind"] for d in docs}
    assert "ServiceAccount" in kinds and not [d for d in docs if d["metadata"]["name"] == "redis"]
    [main] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "celery-main"]
    pod = main["spec"]["template"]["spec"]
    for key in (
        "serviceAccountName",
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
    ):
        assert key in pod, key
    assert main["spec"]["template"]["metadata"]["labels"]["team"] == "payments"
    assert {v["name"] for v in pod["volumes"]} >= {"smtp-ca", "settings", "scratch", "shared", "broker-ca"}
    # Monitoring stays on with the TLS broker: the exporter has the CA, the pull secret and the placement.
    [exporter] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "celery-exporter"]
    exporter_pod = exporter["spec"]["template"]["spec"]
    assert "broker-ca" in {v["name"] for v in exporter_pod["volumes"]}
    for key in ("serviceAccountName", "imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
        assert exporter_pod[key] == pod[key], key


def test_every_object_is_stored_and_every_pod_admitted(
    kube_api: KubeAPI, fit: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, docs = fit
    kube_api.apply([PRIORITY_CLASS])
    served = kube_api.apply(docs)
    assert [(o["kind"], o["metadata"]["name"]) for o in served] == [(d["kind"], d["metadata"]["name"]) for d in docs]
    seen = observe(kube_api.api_client, NAMESPACE, docs)
    assert seen.problems() == [], report(seen)
    assert seen.failed_create == [], report(seen)
