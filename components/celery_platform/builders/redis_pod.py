"""Pure builders of the Redis pod: its spec, its placement and its admission plan."""

from __future__ import annotations

from typing import Any

from celery_platform.builders.admission import PodPlan
from celery_platform.builders.secret_keys import REDIS_PASSWORD
from celery_platform.builders.workloads import (
    REDIS_DATA,
    REDIS_PORT,
    build_pod_spec,
    exec_probe,
    secret_env,
    security_context,
)
from celery_platform.config.podsettings import PodSettings, apply_to_pod
from celery_platform.config.specs import RedisSpec

REDIS_UID = 10999  # a high UID that clashes with no host user; the command bypasses the entrypoint


def placement_only(pod: PodSettings | None) -> PodSettings:
    """Return what of the platform's pod settings Redis takes: pull secrets, placement, pod metadata.

    Redis needs no cloud identity, no app env or volumes, and is one pod, so nothing to spread.
    """
    pod = pod or PodSettings()
    return PodSettings(
        image_pull_secrets=pod.image_pull_secrets,
        node_selector=pod.node_selector,
        tolerations=pod.tolerations,
        affinity=pod.affinity,
        priority_class_name=pod.priority_class_name,
        annotations=pod.annotations,
        labels=pod.labels,
        topology_spread=(),
    )


def redis_pod_spec(spec: RedisSpec, secret_name: Any, pod: PodSettings | None = None) -> dict[str, Any]:
    """Return Redis's pod spec: password from the Secret, noeviction, authenticated probes."""
    ping = ["sh", "-c", f"redis-cli -h 127.0.0.1 -p {REDIS_PORT} ping | grep -q PONG"]
    container = {
        "name": "redis",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["redis-server"],
        "args": [
            "--port",
            str(REDIS_PORT),
            # $(REDIS_PASSWORD) is expanded by the kubelet from the env below; no literal secret.
            "--requirepass",
            "$(REDIS_PASSWORD)",
            "--maxmemory",
            str(spec.maxmemory_bytes()),
            # kombu keeps queue bindings in plain keys: evicting one silently loses a queue.
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes" if spec.persistent else "no",
            "--save",
            "",
            "--dir",
            REDIS_DATA,
        ],
        "env": [
            secret_env("REDIS_PASSWORD", secret_name, REDIS_PASSWORD),
            secret_env("REDISCLI_AUTH", secret_name, REDIS_PASSWORD),
        ],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "resources": spec.resources.to_k8s(),
        "securityContext": security_context(),
        "volumeMounts": [{"name": "data", "mountPath": REDIS_DATA}],
        "startupProbe": exec_probe(ping, period=2, failures=30),
        "livenessProbe": exec_probe(ping, period=10, failures=3),
        "readinessProbe": exec_probe(ping, period=5, failures=2),
    }
    volumes = [] if spec.persistent else [{"name": "data", "emptyDir": {"sizeLimit": spec.storage_size}}]
    pod_spec = build_pod_spec(
        container=container, init_containers=[], volumes=volumes, run_as_user=REDIS_UID, grace_seconds=30
    )
    return apply_to_pod(pod_spec, placement_only(pod), selector=None, service_account_default="")


def redis_plan(spec: RedisSpec, pod: PodSettings | None = None) -> PodPlan:
    """Return Redis's pods as admission sees them."""
    return PodPlan(
        owner="redis",
        replicas=1,
        surge=0,
        pod_spec=redis_pod_spec(spec, "secret", pod),
        claims=(spec.storage_size,) if spec.persistent else (),
        resources_field="redis.resources",
    )
