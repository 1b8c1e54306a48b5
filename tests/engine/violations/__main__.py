"""One raw Kubernetes object per policy of policy/, each breaking exactly that policy.

The components cannot produce these objects (that is the point of them), so this program writes
them by hand; `pulumi preview --policy-pack policy` must refuse each one by its policy's name.
"""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

SECURE: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
BOUNDED = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}


def container(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "app",
        "image": "ghcr.io/acme/app:1.2.3",
        "command": ["celery", "-A", "app", "worker"],
        "resources": BOUNDED,
        "securityContext": SECURE,
    }
    return {**base, **overrides}


def deployment(name: str, replicas: int = 1, **overrides: Any) -> k8s.apps.v1.Deployment:
    labels = {"app": name}
    return k8s.apps.v1.Deployment(
        name,
        metadata={"name": name, "namespace": "default"},
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(**overrides)]}},
        },
    )


deployment("unbounded", resources={"requests": {"cpu": "100m"}})  # containers-have-bounded-resources
deployment("latest", image="ghcr.io/acme/app:latest")  # images-are-pinned
deployment(  # probes-check-health
    "proc-probe", livenessProbe={"exec": {"command": ["grep", "celery", "/proc/1/cmdline"]}}
)
beat = deployment("beat", replicas=2, command=["celery", "-A", "app", "beat"])  # celery-beat-runs-at-most-once
k8s.autoscaling.v2.HorizontalPodAutoscaler(  # celery-beat-is-not-autoscaled
    "beat-hpa",
    metadata={"name": "beat-hpa", "namespace": "default"},
    spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "beat"},
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }
        ],
    },
)
# autoscaled-workloads-leave-replicas-to-the-autoscaler: reported on whichever of the two is analyzed
# second, so the ScaledObject waits for the Deployment (as the components' own do).
scaled = deployment("scaled", replicas=3)
k8s.apiextensions.CustomResource(  # autoscaler-credentials-come-from-secrets
    "scaled-keda",
    api_version="keda.sh/v1alpha1",
    kind="ScaledObject",
    metadata={"name": "scaled-keda", "namespace": "default"},
    spec={
        "scaleTargetRef": {"name": "scaled"},
        "minReplicaCount": 0,
        "maxReplicaCount": 3,
        "triggers": [
            {
                "type": "redis",
                "metadata": {"address": "redis.default.svc:6379", "listName": "default", "password": "hunter2"},
            }
        ],
    },
    opts=pulumi.ResourceOptions(depends_on=[scaled]),
)
deployment(  # secrets-come-from-secret-refs
    "literal-secret", env=[{"name": "DATABASE_URL", "value": "postgresql://app:pw@db:5432/app"}]
)
deployment(  # pods-are-restricted
    "privileged",
    securityContext={k: v for k, v in SECURE.items() if k != "allowPrivilegeEscalation"} | {"privileged": True},
)
