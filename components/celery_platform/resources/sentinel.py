"""SentinelBroker: our Redis as a primary and replicas that Sentinels fail over (``broker.type: sentinel``).

Two StatefulSets (data nodes, Sentinels) with headless Services, a ClusterIP Service in front of the
Sentinels for clients that name one address, a PodDisruptionBudget each, NetworkPolicies that admit
only the platform's pods (and KEDA's operator with autoscaling), and the ``sentinel://`` URL Secret.
It satisfies ``Broker``: the workers, beat, the exporter and KEDA reach the primary through the
Sentinels, never by a node's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.builders.admission import check_limit_range
from celery_platform.builders.broker import broker_auth
from celery_platform.builders.labels import PART_OF, standard_labels
from celery_platform.builders.secret_keys import REDIS_PASSWORD, SENTINEL_PASSWORD
from celery_platform.builders.sentinel_pods import (
    SentinelNames,
    SentinelPodRefs,
    node_addresses,
    node_pod_spec,
    pod_domain,
    sentinel_addresses,
    sentinel_plans,
    sentinel_pod_spec,
    sentinel_url,
)
from celery_platform.builders.workloads import REDIS_PORT
from celery_platform.config.autoscaling import BrokerAuth, KedaOperator
from celery_platform.config.broker import URL_KEY, BrokerTLS, SentinelClient
from celery_platform.config.guardrails import LimitRangeSpec
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, raise_if_any, untyped, validated_by_parent
from celery_platform.config.sentinel import SENTINEL_PORT, SentinelSpec, persistence_problems
from celery_platform.config.specs import RedisSpec
from celery_platform.resources._statefulset import pod_metadata, rollout_options
from celery_platform.resources.secrets import PlatformSecrets


@dataclass(frozen=True, kw_only=True)
class SentinelBrokerArgs:
    """Arguments of SentinelBroker."""

    namespace: pulumi.Input[str]
    """Namespace of every object. Required."""
    secrets: PlatformSecrets
    """Where the Redis and Sentinel passwords come from (``holds_sentinel_password``). Required."""
    spec: SentinelSpec = field(default_factory=SentinelSpec)
    """Replicas, Sentinels, quorum, the failover's timing. Default: ``SentinelSpec()``."""
    redis: RedisSpec = field(default_factory=lambda: RedisSpec(persistent=True))
    """The data nodes' image, storage and resources; ``persistent`` must be true. Default: persistent."""
    cluster_domain: pulumi.Input[str] = "cluster.local"
    """The cluster's DNS domain, for every pod's stable name. Default: ``"cluster.local"``."""
    limit_range: LimitRangeSpec | None = None
    """Check the pods against this LimitRange before registering anything. Default: no check."""
    pod: PodSettings | None = None
    """The platform's pod settings; the broker takes the pull secrets, placement and pod metadata. Default: none."""
    object_name: str = "redis"
    """The objects' name prefix (``<name>-node``, ``<name>-sentinel``). Default: ``"redis"``."""
    rollout_timeout_seconds: int = 600
    """How long ``pulumi up`` waits for each StatefulSet to become ready. Default: ``600``."""
    keda_operator: KedaOperator | None = None
    """Admit the KEDA operator's backlog polls, for pools that autoscale. Default: only the platform's pods."""


class SentinelBroker(pulumi.ComponentResource):
    """Redis with Sentinel: ``replicas + 1`` data nodes and ``sentinels`` Sentinels, failover in seconds."""

    host: pulumi.Output[str]
    """The Sentinels' ClusterIP Service (a client that takes one Sentinel address may use it)."""
    port: int = SENTINEL_PORT
    url: pulumi.Output[str]
    """Secret: the ``sentinel://`` URL of every Sentinel."""
    url_secret_name: pulumi.Output[str]
    url_secret_key: str = URL_KEY
    tls: BrokerTLS | None = None  # in-cluster traffic stays in the namespace; NetworkPolicy admits only our pods
    database: int = 0
    auth: BrokerAuth
    sentinel: SentinelClient

    def __init__(
        self, resource_name: str, args: SentinelBrokerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems: list[Problem] = []
        if not validated_by_parent(opts):
            problems += args.spec.validate("broker.sentinel") + args.redis.validate("redis")
            problems += persistence_problems(args.redis)
            if args.keda_operator is not None:
                problems += args.keda_operator.validate("kedaOperator")
            if not problems and args.limit_range is not None:
                for plan in sentinel_plans(args.redis, args.spec, args.pod):
                    problems += check_limit_range(plan, args.limit_range)
        if args.secrets.redis_password is None or args.secrets.sentinel_password is None:
            problems.append(
                Problem(
                    "secrets",
                    "hold no Redis or no Sentinel password",
                    "holds_redis_password/holds_sentinel_password False",
                    "PlatformSecrets with both",
                )
            )
        raise_if_any(f"SentinelBroker {resource_name!r}", problems)
        super().__init__("celery-platform:index:SentinelBroker", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = SentinelNames(args.object_name)
        spec, namespace = args.spec, args.namespace
        where = pulumi.Output.all(namespace, args.cluster_domain)
        nodes = where.apply(lambda p: node_addresses(names, spec, p[0], p[1]))
        sentinels = where.apply(lambda p: sentinel_addresses(names, spec, p[0], p[1]))
        refs = SentinelPodRefs(
            secret_name=args.secrets.secret_name,
            node_domain=where.apply(lambda p: pod_domain(names.nodes_headless, p[0], p[1])),
            sentinel_domain=where.apply(lambda p: pod_domain(names.sentinels_headless, p[0], p[1])),
            nodes=nodes.apply(" ".join),
            sentinels=sentinels.apply(" ".join),
        )

        def meta(name: str, labels: dict[str, str]) -> Any:
            return {"name": name, "namespace": namespace, "labels": labels}

        node_labels = standard_labels("redis", names.nodes, "broker")
        sentinel_labels = standard_labels("redis-sentinel", names.sentinels, "broker")
        node_ports = [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}]
        sentinel_ports = [{"name": "sentinel", "port": SENTINEL_PORT, "targetPort": "sentinel", "protocol": "TCP"}]
        # Headless, with not-ready addresses: a replica reaches its master, a Sentinel its peers, from the start.
        for service, labels, selector, ports in (
            (names.nodes_headless, node_labels, names.node_selector(), node_ports),
            (names.sentinels_headless, sentinel_labels, names.sentinel_selector(), sentinel_ports),
        ):
            k8s.core.v1.Service(
                f"{resource_name}-{service.removeprefix(args.object_name + '-')}",
                metadata=meta(service, labels),
                spec=untyped(
                    {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector, "ports": ports}
                ),
                opts=child,
            )
        self.service = k8s.core.v1.Service(
            f"{resource_name}-sentinel",
            metadata=meta(names.sentinels, sentinel_labels),
            spec=untyped({"type": "ClusterIP", "selector": names.sentinel_selector(), "ports": sentinel_ports}),
            opts=child,
        )
        placed = args.pod or PodSettings()
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": args.redis.storage_size}},
        }
        if args.redis.storage_class:
            claim_spec["storageClassName"] = args.redis.storage_class
        rollout = rollout_options(child, args.rollout_timeout_seconds)
        self.nodes = self._stateful_set(
            f"{resource_name}-node",
            names.nodes,
            names.nodes_headless,
            spec.replicas + 1,
            node_labels,
            names.node_selector(),
            node_pod_spec(args.redis, spec, refs, names, args.pod),
            placed,
            namespace,
            rollout,
            claims=[{"metadata": {"name": "data", "labels": node_labels}, "spec": claim_spec}],
        )
        self.sentinels = self._stateful_set(
            f"{resource_name}-sentinel",
            names.sentinels,
            names.sentinels_headless,
            spec.sentinels,
            sentinel_labels,
            names.sentinel_selector(),
            sentinel_pod_spec(args.redis, spec, refs, names, args.pod),
            placed,
            namespace,
            rollout,
        )
        # One pod at a time: a drain never takes a second node, nor the Sentinels' majority.
        for name, labels, selector in (
            (names.nodes, node_labels, names.node_selector()),
            (names.sentinels, sentinel_labels, names.sentinel_selector()),
        ):
            k8s.policy.v1.PodDisruptionBudget(
                f"{resource_name}-{name.removeprefix(args.object_name + '-')}-pdb",
                metadata=meta(f"{name}-pdb", labels),
                spec=untyped({"maxUnavailable": 1, "selector": {"matchLabels": selector}}),
                opts=child,
            )
        # Only the platform's pods (the nodes and Sentinels among them) and KEDA's operator reach either port.
        peers = [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}},
            *([args.keda_operator.ingress_peer()] if args.keda_operator is not None else []),
        ]
        for name, labels, selector, port in (
            (names.nodes, node_labels, names.node_selector(), REDIS_PORT),
            (names.sentinels, sentinel_labels, names.sentinel_selector(), SENTINEL_PORT),
        ):
            k8s.networking.v1.NetworkPolicy(
                f"{resource_name}-{name.removeprefix(args.object_name + '-')}-ingress",
                metadata=meta(f"{name}-ingress", labels),
                spec=untyped(
                    {
                        "podSelector": {"matchLabels": selector},
                        "policyTypes": ["Ingress"],
                        "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": port}]}],
                    }
                ),
                opts=child,
            )

        self.host = pulumi.Output.all(self.service.metadata.name, namespace, args.cluster_domain).apply(
            lambda p: f"{p[0]}.{p[1]}.svc.{p[2]}"
        )
        password = args.secrets.redis_password
        assert password is not None
        self.url = pulumi.Output.secret(
            pulumi.Output.all(password, sentinels).apply(lambda p: sentinel_url(p[0], p[1]))
        )
        self.url_secret = k8s.core.v1.Secret(
            f"{resource_name}-url",
            metadata={"namespace": namespace, "labels": sentinel_labels},
            type="Opaque",
            # Secret because url is: apply keeps the secrecy of its input.
            string_data=self.url.apply(lambda url: {URL_KEY: url}),
            opts=child,
        )
        self.url_secret_name = self.url_secret.metadata.name
        secret = args.secrets.secret_name
        self.auth = broker_auth((secret, REDIS_PASSWORD), None, sentinel_password=(secret, SENTINEL_PASSWORD))
        self.sentinel = SentinelClient(
            master_name=spec.master_name, addresses=sentinels, password=(secret, SENTINEL_PASSWORD)
        )
        self.register_outputs({"host": self.host, "port": self.port, "url": self.url})

    def _stateful_set(
        self,
        resource_name: str,
        name: str,
        service: str,
        replicas: int,
        labels: dict[str, str],
        selector: dict[str, str],
        pod_spec: dict[str, Any],
        placed: PodSettings,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
        claims: list[dict[str, Any]] | None = None,
    ) -> k8s.apps.v1.StatefulSet:
        # Parallel: a node on a lost machine must not hold the others' (re)start; the scripts order roles.
        spec: dict[str, Any] = {
            "replicas": replicas,
            "serviceName": service,
            "selector": {"matchLabels": selector},
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": pod_metadata(labels, placed.labels, placed.annotations), "spec": pod_spec},
        }
        if claims:
            spec["volumeClaimTemplates"] = claims
        return k8s.apps.v1.StatefulSet(
            resource_name,
            metadata={"name": name, "namespace": namespace, "labels": labels},
            spec=untyped(spec),
            opts=opts,
        )
