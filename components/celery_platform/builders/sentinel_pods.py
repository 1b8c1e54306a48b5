"""Pure builders of ``broker.type: sentinel``'s own pods: the data nodes, the Sentinels, their names and plans.

Two StatefulSets, each governed by a headless Service that publishes not-ready addresses, so that every
pod has a stable DNS name from its first second (a replica must reach its master, and a Sentinel its
peers, before either is ready): ``<name>-node-<i>.<name>-node-headless.<ns>.svc.<domain>:6379`` and
``<name>-sentinel-<i>.<name>-sentinel-headless.<ns>.svc.<domain>:26379``. Pod IPs change on every
restart; these names do not, so the Sentinels announce and resolve names (``announce-hostnames``).
What each container does at start is in ``sentinel_scripts``; this module sets its env and argv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from celery_platform.builders.admission import PodPlan
from celery_platform.builders.labels import selector_labels
from celery_platform.builders.redis_pod import REDIS_UID, placement_only
from celery_platform.builders.secret_keys import REDIS_PASSWORD, SENTINEL_PASSWORD
from celery_platform.builders.sentinel_scripts import (
    PRESTOP_SECONDS,
    REDIS_NODE_LIVENESS_PROBE,
    REDIS_NODE_PRESTOP_SCRIPT,
    REDIS_NODE_PROBE,
    REDIS_NODE_SCRIPT,
    REDIS_SHUTDOWN_SECONDS,
    SENTINEL_LIVENESS_PROBE,
    SENTINEL_PROBE,
    SENTINEL_SCRIPT,
)
from celery_platform.builders.workloads import (
    REDIS_DATA,
    REDIS_PORT,
    build_pod_spec,
    exec_probe,
    secret_env,
    security_context,
)
from celery_platform.config.podsettings import PodSettings, apply_to_pod
from celery_platform.config.sentinel import SENTINEL_PORT, SentinelSpec
from celery_platform.config.specs import RedisSpec

CONF_DIR = "/conf"
# The generated config holds the passwords: in memory, never on the node's disk or the data volume.
CONF_VOLUME = {"name": "conf", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
CONF_MOUNT = {"name": "conf", "mountPath": CONF_DIR}
# A data node's grace period covers its preStop hook (a master hands over its role: at most PRESTOP_SECONDS)
# and then redis-server's SIGTERM (a master that kept its role waits up to shutdown-timeout for its replicas).
NODE_GRACE_SECONDS = PRESTOP_SECONDS + REDIS_SHUTDOWN_SECONDS + 5


@dataclass(frozen=True)
class SentinelNames:
    """The objects' names, all derived from the broker's object name."""

    object_name: str

    @property
    def nodes(self) -> str:
        """The data nodes' StatefulSet (and its pods' name prefix)."""
        return f"{self.object_name}-node"

    @property
    def nodes_headless(self) -> str:
        """The data nodes' governing headless Service."""
        return f"{self.object_name}-node-headless"

    @property
    def sentinels(self) -> str:
        """The Sentinels' StatefulSet, and their ClusterIP Service (for clients that name one address)."""
        return f"{self.object_name}-sentinel"

    @property
    def sentinels_headless(self) -> str:
        """The Sentinels' governing headless Service."""
        return f"{self.object_name}-sentinel-headless"

    def node_selector(self) -> dict[str, str]:
        """The data nodes' selector labels."""
        return selector_labels("redis", self.nodes)

    def sentinel_selector(self) -> dict[str, str]:
        """The Sentinels' selector labels."""
        return selector_labels("redis-sentinel", self.sentinels)


def pod_addresses(stateful_set: str, service: str, namespace: str, domain: str, count: int, port: int) -> list[str]:
    """Return ``host:port`` of each pod of a StatefulSet by its stable DNS name, ordinal 0 first."""
    return [f"{stateful_set}-{i}.{pod_domain(service, namespace, domain)}:{port}" for i in range(count)]


def node_addresses(names: SentinelNames, spec: SentinelSpec, namespace: str, domain: str) -> list[str]:
    """Every data node, primary-to-be first."""
    return pod_addresses(names.nodes, names.nodes_headless, namespace, domain, spec.replicas + 1, REDIS_PORT)


def sentinel_addresses(names: SentinelNames, spec: SentinelSpec, namespace: str, domain: str) -> list[str]:
    """Every Sentinel."""
    return pod_addresses(names.sentinels, names.sentinels_headless, namespace, domain, spec.sentinels, SENTINEL_PORT)


def sentinel_url(password: str, sentinels: Sequence[str], database: int = 0) -> str:
    """Celery's URL of a Sentinel-fronted broker: each Sentinel, with the data nodes' password (kombu logs in
    to the master with it; the Sentinels' own password travels in the transport options)."""
    return ";".join(f"sentinel://:{password}@{address}/{database}" for address in sentinels)


def _self_env(name: str, pod_domain: Any, port: int) -> list[dict[str, Any]]:
    """POD_NAME (downward API) and POD_DOMAIN, then ``name``: this pod's stable host:port, which the kubelet
    expands from the two (the domain may be an Output; nothing is concatenated here)."""
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_DOMAIN", "value": pod_domain},
        {"name": name, "value": f"$(POD_NAME).$(POD_DOMAIN):{port}"},
    ]


def pod_domain(service: str, namespace: str, domain: str) -> str:
    """The DNS suffix of a headless Service's pods: ``<service>.<namespace>.svc.<domain>``."""
    return f"{service}.{namespace}.svc.{domain}"


@dataclass(frozen=True, kw_only=True)
class SentinelPodRefs:
    """What both pods reference: the Secret, the master's name and every address (str or Output)."""

    secret_name: Any
    """The platform Secret with REDIS_PASSWORD and SENTINEL_PASSWORD."""
    node_domain: Any
    """The data nodes' DNS suffix (``pod_domain`` of their headless Service)."""
    sentinel_domain: Any
    """The Sentinels' DNS suffix."""
    nodes: Any
    """REDIS_NODES: every data node's host:port, space-separated."""
    sentinels: Any
    """SENTINELS: every Sentinel's host:port, space-separated."""


def _shared_env(spec: SentinelSpec, refs: SentinelPodRefs) -> list[dict[str, Any]]:
    return [
        secret_env("REDIS_PASSWORD", refs.secret_name, REDIS_PASSWORD),
        secret_env("SENTINEL_PASSWORD", refs.secret_name, SENTINEL_PASSWORD),
        {"name": "SENTINEL_MASTER", "value": spec.master_name},
        {"name": "REDIS_NODES", "value": refs.nodes},
        {"name": "SENTINELS", "value": refs.sentinels},
        {"name": "CONF_DIR", "value": CONF_DIR},
    ]


def _placed(pod_spec: dict[str, Any], spec: SentinelSpec, pod: PodSettings | None, selector: Any) -> dict[str, Any]:
    settings = replace(placement_only(pod), topology_spread=spec.topology_spread)
    return apply_to_pod(pod_spec, settings, selector=selector, service_account_default="")


def _script_container(
    name: str,
    image: str,
    script: tuple[str, str],
    port: tuple[str, int],
    *,
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    mounts: list[dict[str, Any]],
    probes: tuple[list[str], list[str]],
    startup_failures: int,
) -> dict[str, Any]:
    """One of the broker's containers: a start script of ``sentinel_scripts`` (its text, its ``$0``) in the Redis
    image, restricted, with startup and liveness asking only that the server answers (``probes[0]``),
    readiness more (``probes[1]``)."""
    live, ready = probes
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", *script],
        "env": env,
        "ports": [{"name": port[0], "containerPort": port[1], "protocol": "TCP"}],
        "resources": resources,
        "securityContext": security_context(),
        "volumeMounts": mounts,
        "startupProbe": exec_probe(live, period=2, failures=startup_failures),
        "livenessProbe": exec_probe(live, period=10, failures=3),
        "readinessProbe": exec_probe(ready, period=5, failures=2),
    }


def node_pod_spec(
    redis: RedisSpec, spec: SentinelSpec, refs: SentinelPodRefs, names: SentinelNames, pod: PodSettings | None = None
) -> dict[str, Any]:
    """Return a data node's pod spec: its role from the Sentinels at start, AOF, noeviction, the write bound."""
    # Startup and liveness ask only that the server answers: a replica whose master is down stays alive
    # (a restart would not bring the master back). Startup allows two minutes: the script may wait up
    # to FAILOVER_WAIT_SECONDS for a failover of this node before redis-server opens its port.
    container = _script_container(
        "redis",
        redis.image,
        (REDIS_NODE_SCRIPT, "redis-node"),
        ("redis", REDIS_PORT),
        env=[*_self_env("REDIS_SELF", refs.node_domain, REDIS_PORT), *_shared_env(spec, refs)],
        resources=redis.resources.to_k8s(),
        mounts=[{"name": "data", "mountPath": REDIS_DATA}, CONF_MOUNT],
        probes=(REDIS_NODE_LIVENESS_PROBE, REDIS_NODE_PROBE),
        startup_failures=60,
    )
    container["args"] = [
        "--maxmemory",
        str(redis.maxmemory_bytes()),
        # kombu keeps queue bindings in plain keys: evicting one silently loses a queue.
        "--maxmemory-policy",
        "noeviction",
        "--appendonly",
        "yes",
        "--save",
        "",
        "--dir",
        REDIS_DATA,
        "--min-replicas-to-write",
        str(spec.min_replicas_to_write),
        "--min-replicas-max-lag",
        str(spec.min_replicas_max_lag_seconds),
    ]
    # A master being stopped (a roll-out, a drain) first hands its role to an in-sync replica.
    prestop = ["timeout", str(PRESTOP_SECONDS), "sh", "-c", REDIS_NODE_PRESTOP_SCRIPT, "redis-prestop"]
    container["lifecycle"] = {"preStop": {"exec": {"command": prestop}}}
    pod_spec = build_pod_spec(
        container=container,
        init_containers=[],
        volumes=[CONF_VOLUME],
        run_as_user=REDIS_UID,
        grace_seconds=NODE_GRACE_SECONDS,
    )
    return _placed(pod_spec, spec, pod, names.node_selector())


def sentinel_pod_spec(
    redis: RedisSpec, spec: SentinelSpec, refs: SentinelPodRefs, names: SentinelNames, pod: PodSettings | None = None
) -> dict[str, Any]:
    """Return a Sentinel's pod spec: it monitors the current master, announces its stable name."""
    # A Sentinel whose master is down is doing its job: only readiness asks that it holds a master up.
    container = _script_container(
        "sentinel",
        redis.image,
        (SENTINEL_SCRIPT, "sentinel"),
        ("sentinel", SENTINEL_PORT),
        env=[
            *_self_env("SENTINEL_SELF", refs.sentinel_domain, SENTINEL_PORT),
            *_shared_env(spec, refs),
            {"name": "SENTINEL_QUORUM", "value": str(spec.effective_quorum())},
            {"name": "SENTINEL_DOWN_AFTER_MS", "value": str(spec.down_after_milliseconds)},
            {"name": "SENTINEL_FAILOVER_TIMEOUT_MS", "value": str(spec.failover_timeout_milliseconds)},
        ],
        resources=spec.resources.to_k8s(),
        mounts=[CONF_MOUNT],
        probes=(SENTINEL_LIVENESS_PROBE, SENTINEL_PROBE),
        startup_failures=30,
    )
    pod_spec = build_pod_spec(
        container=container, init_containers=[], volumes=[CONF_VOLUME], run_as_user=REDIS_UID, grace_seconds=10
    )
    return _placed(pod_spec, spec, pod, names.sentinel_selector())


# The plans' stand-ins: admission reads resources and volumes, never names or addresses.
_PLAN_REFS = SentinelPodRefs(secret_name="secret", node_domain="", sentinel_domain="", nodes="", sentinels="")


def sentinel_plans(redis: RedisSpec, spec: SentinelSpec, pod: PodSettings | None = None) -> list[PodPlan]:
    """Return the data nodes' and the Sentinels' pods as admission sees them (StatefulSets: no surge)."""
    names = SentinelNames("redis")
    return [
        PodPlan(
            owner="redis",
            replicas=spec.replicas + 1,
            surge=0,
            pod_spec=node_pod_spec(redis, spec, _PLAN_REFS, names, pod),
            claims=(redis.storage_size,),
            resources_field="redis.resources",
        ),
        PodPlan(
            owner="broker.sentinel",
            replicas=spec.sentinels,
            surge=0,
            pod_spec=sentinel_pod_spec(redis, spec, _PLAN_REFS, names, pod),
            resources_field="broker.sentinel.resources",
        ),
    ]
