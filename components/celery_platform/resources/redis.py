"""RedisBroker: a StatefulSet of one Redis, its Services, NetworkPolicy and the broker URL Secret."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.builders.admission import check_limit_range
from celery_platform.builders.broker import broker_auth
from celery_platform.builders.labels import PART_OF, selector_labels, standard_labels
from celery_platform.builders.redis_pod import placement_only, redis_plan, redis_pod_spec
from celery_platform.builders.secret_keys import REDIS_PASSWORD
from celery_platform.builders.workloads import REDIS_PORT
from celery_platform.config.autoscaling import BrokerAuth, KedaOperator
from celery_platform.config.broker import URL_KEY, BrokerTLS, SentinelClient
from celery_platform.config.guardrails import LimitRangeSpec
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, raise_if_any, untyped, validated_by_parent
from celery_platform.config.specs import RedisSpec
from celery_platform.config.validation import check_count
from celery_platform.resources._statefulset import rollout_options, stateful_set_of_one
from celery_platform.resources.secrets import PlatformSecrets


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
    sentinel: SentinelClient | None = None  # one Redis, reached directly

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
        password = args.secrets.redis_password
        if password is None:
            problems.append(
                Problem("secrets", "hold no Redis password", "holds_redis_password=False", "PlatformSecrets with it")
            )
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
            pulumi.Output.all(password, self.host).apply(lambda parts: f"redis://:{parts[0]}@{parts[1]}:{REDIS_PORT}/0")
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
