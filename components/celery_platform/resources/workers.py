"""CeleryWorkers: one Deployment per worker pool, a single beat, and the hooks ConfigMap they load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.builders import probes
from celery_platform.builders.admission import check_limit_range, unique
from celery_platform.builders.celery_pods import (
    ROLLOUT_SURGE,
    beat_pod_spec,
    celery_plans,
    pod_problems,
    service_accounts,
    validate_pools,
    worker_pod_spec,
)
from celery_platform.builders.labels import selector_labels, standard_labels
from celery_platform.builders.workloads import Refs
from celery_platform.config.addresses import host_port
from celery_platform.config.autoscaling import API_VERSION as KEDA_API_VERSION
from celery_platform.config.autoscaling import (
    SentinelTarget,
    autoscaling_problems,
    is_autoscaled,
    name_problems,
    scaled_object_spec,
    trigger_authentication_spec,
)
from celery_platform.config.guardrails import LimitRangeSpec
from celery_platform.config.problems import raise_if_any, untyped, validated_by_parent
from celery_platform.config.specs import BeatSpec, PoolSpec, memory_warning
from celery_platform.config.workload import WorkloadSettings
from celery_platform.resources._statefulset import pod_metadata, rollout_options, stateful_set_of_one
from celery_platform.resources.broker import Broker
from celery_platform.resources.secrets import PlatformSecrets


@dataclass(frozen=True, kw_only=True)
class CeleryWorkersArgs:
    """Arguments of CeleryWorkers."""

    namespace: pulumi.Input[str]
    """Namespace of every object. Required."""
    secrets: PlatformSecrets
    """The platform Secret the pods read keys from. Required."""
    broker: Broker
    """The broker: a RedisBroker or an ExternalBroker (host, port, URL Secret, TLS). Required."""
    settings: WorkloadSettings
    """Image, app and timing shared by every pod. Required."""
    pools: Sequence[PoolSpec]
    """Worker pools, one Deployment each. Required."""
    beat: BeatSpec = field(default_factory=BeatSpec)
    """The single beat. Default: ``BeatSpec()``."""
    limit_range: LimitRangeSpec | None = None
    """Check every pod against this LimitRange before registering anything. Default: no check."""


class CeleryWorkers(pulumi.ComponentResource):
    """Worker pools (a Deployment, a PodDisruptionBudget each) and one beat (a StatefulSet of one).

    Beat is a StatefulSet of one, never a Deployment: a RollingUpdate Deployment briefly runs two
    beats, which sends every periodic task twice, and even Recreate replaces a pod on an
    unreachable node at once, while a StatefulSet waits until the old pod is known to be gone.
    """

    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(self, resource_name: str, args: CeleryWorkersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        checked = validated_by_parent(opts)
        problems = [] if checked else args.settings.validate() + validate_pools(args.pools) + args.beat.validate("beat")
        if not problems and not checked:
            problems += pod_problems(args.settings, args.pools, args.beat)
            problems += autoscaling_problems(args.pools, args.broker.auth) + name_problems(resource_name, args.pools)
        if not problems and not checked and args.limit_range is not None:
            for plan in celery_plans(args.settings, args.pools, args.beat, args.broker.tls):
                problems += check_limit_range(plan, args.limit_range)
        raise_if_any(f"CeleryWorkers {resource_name!r}", unique(problems))
        super().__init__("celery-platform:index:CeleryWorkers", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for i, pool in enumerate(args.pools):
            warning = memory_warning(f"pools[{i}]", pool, args.settings.pod.merged(pool.pod).memory_volume_bytes())
            if warning:
                pulumi.log.warn(warning, resource=self)
        self.service_accounts: dict[str, k8s.core.v1.ServiceAccount] = {}
        for _, account in service_accounts(args.settings, args.pools, args.beat):
            name = account.resolved_name(resource_name)
            if account.create and name not in self.service_accounts:
                self.service_accounts[name] = k8s.core.v1.ServiceAccount(
                    f"{resource_name}-sa-{name}",
                    metadata={
                        "name": name,
                        "namespace": args.namespace,
                        "labels": standard_labels("celery-platform", resource_name, "identity"),
                        "annotations": dict(account.annotations),
                    },
                    # The pods say whether they mount the token; the account never does by default.
                    automount_service_account_token=account.automount_token,
                    opts=child,
                )

        self.hooks = k8s.core.v1.ConfigMap(
            f"{resource_name}-hooks",
            metadata={
                "namespace": args.namespace,
                "labels": standard_labels("celery-platform", resource_name, "hooks"),
            },
            data={probes.HOOKS_FILENAME: probes.hooks_source()},
            immutable=True,
            opts=child,
        )
        refs = Refs(
            secret_name=args.secrets.secret_name,
            secret_keys=args.secrets.keys,
            broker_secret_name=args.broker.url_secret_name,
            broker_secret_key=args.broker.url_secret_key,
            broker_host=args.broker.host,
            broker_port=args.broker.port,
            broker_tls=args.broker.tls,
            broker_sentinel=args.broker.sentinel,
            hooks_config_map=self.hooks.metadata.name,
        )
        self.trigger_authentication: k8s.apiextensions.CustomResource | None = None
        self._auth_name = f"{resource_name}-broker-auth"
        if any(is_autoscaled(p) for p in args.pools):
            # One for every scaled pool: the broker's password (and CA) from Secrets, never a literal.
            self.trigger_authentication = k8s.apiextensions.CustomResource(
                self._auth_name,
                api_version=KEDA_API_VERSION,
                kind="TriggerAuthentication",
                metadata={
                    "name": self._auth_name,
                    "namespace": args.namespace,
                    "labels": standard_labels("celery-platform", resource_name, "autoscaling"),
                },
                spec=trigger_authentication_spec(args.broker.auth),
                opts=child,
            )
        self.deployments = {}
        self.scaled_objects: dict[str, k8s.apiextensions.CustomResource] = {}
        for pool in args.pools:
            self.deployments[pool.name] = self._pool(resource_name, args, pool, refs, child)
        self.beat = self._beat(resource_name, args, refs, child) if args.beat.enabled else None
        self.register_outputs({"pools": sorted(self.deployments)})

    def _pool(
        self, resource_name: str, args: CeleryWorkersArgs, pool: PoolSpec, refs: Refs, child: pulumi.ResourceOptions
    ) -> k8s.apps.v1.Deployment:
        name = f"{resource_name}-{pool.name}"
        labels = standard_labels("celery-worker", name, "worker")
        selector = selector_labels("celery-worker", name)
        meta: Any = {"name": name, "namespace": args.namespace, "labels": labels}
        pod = args.settings.pod.merged(pool.pod)
        # An autoscaled pool's replicas belong to KEDA's HPA: a value of ours would be a field-manager
        # conflict on every `pulumi up` (pulumi-kubernetes #2491), or would undo each scaling.
        replicas = {} if is_autoscaled(pool) else {"replicas": pool.replicas}
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec=untyped(
                {
                    **replicas,
                    "selector": {"matchLabels": selector},
                    # maxUnavailable 0: a rollout never drops capacity; the new pod must be ready first.
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": ROLLOUT_SURGE},
                    },
                    "revisionHistoryLimit": 5,
                    "template": {
                        "metadata": pod_metadata(labels, pod.labels, pod.annotations),
                        "spec": worker_pod_spec(args.settings, pool, refs, name, resource_name),
                    },
                }
            ),
            opts=rollout_options(child, args.settings.rollout_timeout_seconds),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": f"{name}-pdb", "namespace": args.namespace, "labels": labels},
            # maxUnavailable 1, not minAvailable: a one-replica pool must not block node drains forever,
            # and it stays valid for an autoscaled pool at zero.
            spec=untyped({"maxUnavailable": 1, "selector": {"matchLabels": selector}}),
            opts=child,
        )
        if is_autoscaled(pool):
            assert self.trigger_authentication is not None
            self.scaled_objects[pool.name] = k8s.apiextensions.CustomResource(
                f"{name}-scaler",
                api_version=KEDA_API_VERSION,
                kind="ScaledObject",
                metadata={"name": name, "namespace": args.namespace, "labels": labels},
                spec=scaled_object_spec(
                    name,
                    pool,
                    address=pulumi.Output.from_input(args.broker.host).apply(lambda h: host_port(h, args.broker.port)),
                    database=args.broker.database,
                    tls=args.broker.tls is not None,
                    auth_name=self._auth_name,
                    # With Sentinel, KEDA asks the Sentinels for the master, as the workers do.
                    sentinel=(
                        SentinelTarget(master_name=client.master_name, addresses=client.joined(","))
                        if (client := args.broker.sentinel) is not None
                        else None
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, self.trigger_authentication]),
            )
        return deployment

    def _beat(
        self, resource_name: str, args: CeleryWorkersArgs, refs: Refs, child: pulumi.ResourceOptions
    ) -> k8s.apps.v1.StatefulSet:
        name = f"{resource_name}-beat"
        labels = standard_labels("celery-beat", resource_name, "beat")
        selector = selector_labels("celery-beat", resource_name)
        pod = args.settings.pod.merged(args.beat.pod)
        spec = beat_pod_spec(args.settings, args.beat, refs, resource_name)
        return stateful_set_of_one(
            name,
            namespace=args.namespace,
            labels=labels,
            selector=selector,
            pod_spec=spec,
            pod_labels=pod.labels,
            pod_annotations=pod.annotations,
            opts=rollout_options(child, args.settings.rollout_timeout_seconds),
        )
