"""RedisBroker: a StatefulSet of one Redis, its Services, NetworkPolicy and the broker URL Secret."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.build.admission import PodPlan, check_limit_range
from celery_platform.build.labels import PART_OF, selector_labels, standard_labels
from celery_platform.build.workloads import (
    REDIS_DATA,
    REDIS_PORT,
    build_pod_spec,
    exec_probe,
    secret_env,
    security_context,
)
from celery_platform.config.autoscaling import BrokerAuth, KedaOperator
from celery_platform.config.guardrails import LimitRangeSpec
from celery_platform.config.podsettings import PodSettings, apply_to_pod
from celery_platform.config.specs import RedisSpec
from celery_platform.config.validation import check_count, raise_if_any, untyped, validated_by_parent
from celery_platform.resources._statefulset import rollout_options, stateful_set_of_one
from celery_platform.resources.broker import URL_KEY, BrokerTLS, broker_auth
from celery_platform.resources.secrets import REDIS_PASSWORD, PlatformSecrets

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
    )


@dataclass(frozen=True, kw_only=True)
class RedisBrokerArgs:
    """Arguments of RedisBroker."""

    namespace: pulumi.Input[str]
    """Namespace of every object. Required."""
    secrets: PlatformSecrets
    """Where the Redis password comes from. Required."""
    spec: RedisSpec = field(default_factory=RedisSpec)
    """Image, persistence and resources. Default: ``RedisSpec()``."""
    cluster_domain: pulumi.Input[str] = "cluster.local"
    """The cluster's DNS domain, for the broker host; a secret Output makes the host secret too.
    Default: ``"cluster.local"``."""
    limit_range: LimitRangeSpec | None = None
    """Check the pod against this LimitRange before registering anything. Default: no check."""
    pod: PodSettings | None = None
    """The platform's pod settings; Redis takes the pull secrets, placement and pod metadata. Default: none."""
    object_name: str | None = None
    """Name of the Kubernetes objects (the Service's is the broker host) and their instance label; a contract
    with existing objects, so a component renamed later keeps it. Default: the component's name."""
    rollout_timeout_seconds: int = 600
    """How long ``pulumi up`` waits for Redis to become ready before it fails. Default: ``600``."""
    keda_operator: KedaOperator | None = None
    """Admit the KEDA operator's backlog polls, for pools that autoscale. Default: only the platform's pods."""


class RedisBroker(pulumi.ComponentResource):
    """A single Redis broker: StatefulSet, stable Service, NetworkPolicy and a broker-URL Secret.

    ``host``, ``port`` and ``url`` derive from the Service's outputs and ``cluster_domain``, never
    from a typed name: rename the component and every consumer follows.
    """

    host: pulumi.Output[str]
    port: int
    url: pulumi.Output[str]
    url_secret_name: pulumi.Output[str]
    url_secret_key: str = URL_KEY
    tls: BrokerTLS | None = None  # in-cluster traffic stays in the namespace; NetworkPolicy admits only our pods
    database: int = 0
    auth: BrokerAuth

    def __init__(self, resource_name: str, args: RedisBrokerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        subject = f"RedisBroker {resource_name!r}"
        problems = args.spec.validate("redis") + check_count("rolloutTimeoutSeconds", args.rollout_timeout_seconds, 30)
        if validated_by_parent(opts):
            problems = []
        elif args.pod is not None:
            problems += dataclasses.replace(placement_only(args.pod), topology_spread=None).validate("pod")
        if args.keda_operator is not None and not validated_by_parent(opts):
            problems += args.keda_operator.validate("kedaOperator")
        if not problems and args.limit_range is not None and not validated_by_parent(opts):
            problems += check_limit_range(redis_plan(args.spec, args.pod), args.limit_range)
        raise_if_any(subject, problems)
        super().__init__("celery-platform:index:RedisBroker", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_name = args.object_name or resource_name
        labels = standard_labels("redis", object_name, "broker")
        selector = selector_labels("redis", object_name)

        def meta(name: str) -> Any:
            return {"name": name, "namespace": args.namespace, "labels": labels}

        ports = [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}]
        self.service = k8s.core.v1.Service(
            resource_name,
            metadata=meta(object_name),
            spec=untyped({"type": "ClusterIP", "selector": selector, "ports": ports}),
            opts=child,
        )
        self.port = REDIS_PORT
        self.host = pulumi.Output.all(
            self.service.metadata.name, self.service.metadata.namespace, args.cluster_domain
        ).apply(lambda parts: f"{parts[0]}.{parts[1]}.svc.{parts[2]}")
        self.url = pulumi.Output.secret(
            pulumi.Output.all(args.secrets.redis_password, self.host).apply(
                lambda parts: f"redis://:{parts[0]}@{parts[1]}:{REDIS_PORT}/0"
            )
        )
        self.url_secret = k8s.core.v1.Secret(
            f"{resource_name}-url",
            metadata={"namespace": args.namespace, "labels": labels},
            type="Opaque",
            # Secret because url is: apply keeps the secrecy of its input.
            string_data=self.url.apply(lambda url: {URL_KEY: url}),
            opts=child,
        )
        self.url_secret_name = self.url_secret.metadata.name
        self.auth = broker_auth((args.secrets.secret_name, REDIS_PASSWORD), None)

        pod_spec = redis_pod_spec(args.spec, args.secrets.secret_name, args.pod)
        placed = placement_only(args.pod)
        claim_templates: list[dict[str, Any]] = []
        if args.spec.persistent:
            claim_spec: dict[str, Any] = {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": args.spec.storage_size}},
            }
            if args.spec.storage_class:
                claim_spec["storageClassName"] = args.spec.storage_class
            claim_templates = [{"metadata": {"name": "data", "labels": labels}, "spec": claim_spec}]
        self.stateful_set = stateful_set_of_one(
            resource_name,
            namespace=args.namespace,
            labels=labels,
            selector=selector,
            pod_spec=pod_spec,
            pod_labels=placed.labels,
            pod_annotations=placed.annotations,
            ports=ports,
            claim_templates=claim_templates,
            opts=rollout_options(child, args.rollout_timeout_seconds),
            object_name=object_name,
        )
        # Only this platform's pods (and KEDA's operator, with autoscaling) may reach Redis, only on its port.
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-ingress",
            metadata=meta(f"{object_name}-ingress"),
            spec=untyped(
                {
                    "podSelector": {"matchLabels": selector},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}},
                                # KEDA reads the queue lengths of autoscaled pools from its own namespace.
                                *([args.keda_operator.ingress_peer()] if args.keda_operator is not None else []),
                            ],
                            "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                        }
                    ],
                }
            ),
            opts=child,
        )
        self.register_outputs({"host": self.host, "port": self.port, "url": self.url})
