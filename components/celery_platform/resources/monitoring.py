"""CeleryMonitoring: the metrics exporter, its ServiceMonitor and alerts, and the Grafana dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.builders.admission import check_limit_range
from celery_platform.builders.exporter import (
    EXPORTER_FILENAME,
    PORT_NAME,
    exporter_plan,
    exporter_pod_spec,
    exporter_source,
    service_monitor_spec,
)
from celery_platform.builders.labels import selector_labels, standard_labels
from celery_platform.builders.monitoring_rules import dashboard_json, rule_groups
from celery_platform.config.guardrails import LimitRangeSpec
from celery_platform.config.monitoring import MonitoringSpec
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, raise_if_any, untyped, validated_by_parent
from celery_platform.config.validation import check_count, check_image_pinned, check_string_tuple
from celery_platform.resources._statefulset import pod_metadata
from celery_platform.resources.broker import Broker

__all__ = ["CeleryMonitoring", "CeleryMonitoringArgs"]


@dataclass(frozen=True, kw_only=True)
class CeleryMonitoringArgs:
    """Arguments of CeleryMonitoring."""

    namespace: pulumi.Input[str]
    """Namespace of every object (and the one the alerts watch). Required."""
    broker: Broker
    """The broker (ours or an external one); its URL Secret gives the exporter the URL. Required."""
    image: str
    """The app image, used for the exporter unless ``spec.image`` is set. Required."""
    queues: Sequence[str]
    """Every queue to measure (depth, consumers, age). Required."""
    spec: MonitoringSpec = field(default_factory=MonitoringSpec)
    """Exporter, operator objects, dashboard and thresholds. Default: ``MonitoringSpec()``."""
    beat_max_interval_seconds: int | None = None
    """Beat's ``--max-interval``; its alert fires after twice this without a tick. None: no beat, no alert.
    Default: ``None``."""
    worker_containers: Sequence[str] = ("worker",)
    """Container names whose restarts and OOM kills alert. Default: ``("worker",)``."""
    run_as_user: int = 10001
    """Non-root UID (and GID, fsGroup) of the exporter pod. Default: ``10001``."""
    limit_range: LimitRangeSpec | None = None
    """Check the exporter pod against this LimitRange before registering anything. Default: no check."""
    visibility_timeout_seconds: int | None = None
    """The workers' broker visibility timeout: the exporter then returns the tasks of workers killed hard
    to their queues after it, so that a pool autoscaled to zero is woken for them. Default: no sweep."""
    pod: PodSettings | None = None
    """The platform's pod settings (identity, pull secrets, placement); ``spec.pod`` overrides them.
    Default: none."""
    service_account_default: str = "celery"
    """The name of a ServiceAccount that ``pod.serviceAccount`` creates without naming it (the workers'
    component name). Default: ``"celery"``."""

    def exporter_pod(self) -> PodSettings:
        """Return the exporter's pod settings: the platform's, with ``spec.pod`` over them."""
        return (self.pod or PodSettings()).merged(self.spec.pod)

    def validate(self) -> list[Problem]:
        """Return every problem of the arguments."""
        problems = self.spec.validate("monitoring") + check_image_pinned("image", self.image)
        problems += check_string_tuple("queues", tuple(self.queues))
        if self.visibility_timeout_seconds is not None:
            problems += check_count("visibilityTimeoutSeconds", self.visibility_timeout_seconds, 1)
        if not self.queues:
            problems.append(Problem("queues", "is empty", "[]", "at least one queue to measure"))
        if self.beat_max_interval_seconds is not None and self.beat_max_interval_seconds < 1:
            problems.append(
                Problem("beatMaxIntervalSeconds", "too small", str(self.beat_max_interval_seconds), "at least 1")
            )
        return problems


class CeleryMonitoring(pulumi.ComponentResource):
    """The exporter (Deployment + Service), a ServiceMonitor and a PrometheusRule, a dashboard ConfigMap.

    The exporter is one replica with the Recreate strategy: two would double every counter in sums,
    and a scrape gap during a rollout costs nothing. The operator objects can be turned off
    (``spec.prometheus_operator``) for clusters without the Prometheus Operator's CRDs.
    """

    def __init__(
        self, resource_name: str, args: CeleryMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        checked = validated_by_parent(opts)
        problems = [] if checked else args.validate()
        if not problems and not checked and args.limit_range is not None:
            plan = exporter_plan(
                image=args.image,
                spec=args.spec,
                queues=args.queues,
                run_as_user=args.run_as_user,
                tls=args.broker.tls,
                pod=args.exporter_pod(),
            )
            problems += check_limit_range(plan, args.limit_range)
        raise_if_any(f"CeleryMonitoring {resource_name!r}", problems)
        super().__init__("celery-platform:index:CeleryMonitoring", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        labels = standard_labels("celery-exporter", resource_name, "monitoring")
        selector = selector_labels("celery-exporter", resource_name)

        self.source = k8s.core.v1.ConfigMap(
            f"{resource_name}-exporter",
            metadata={"namespace": args.namespace, "labels": labels},
            data={EXPORTER_FILENAME: exporter_source()},
            immutable=True,
            opts=child,
        )
        pod_spec = exporter_pod_spec(
            image=args.image,
            spec=spec,
            queues=args.queues,
            broker_secret_name=args.broker.url_secret_name,
            broker_secret_key=args.broker.url_secret_key,
            config_map=self.source.metadata.name,
            run_as_user=args.run_as_user,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            tls=args.broker.tls,
            sentinel=args.broker.sentinel,
            pod=args.exporter_pod(),
            service_account_default=args.service_account_default,
            spread_labels=selector,
        )
        exporter_pod = args.exporter_pod()
        self.deployment = k8s.apps.v1.Deployment(
            resource_name,
            metadata={"name": resource_name, "namespace": args.namespace, "labels": labels},
            spec=untyped(
                {
                    "replicas": 1,
                    "selector": {"matchLabels": selector},
                    "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 5,
                    "template": {
                        "metadata": pod_metadata(labels, exporter_pod.labels, exporter_pod.annotations),
                        "spec": pod_spec,
                    },
                }
            ),
            opts=child,
        )
        self.service = k8s.core.v1.Service(
            resource_name,
            metadata={"name": resource_name, "namespace": args.namespace, "labels": labels},
            spec=untyped(
                {
                    "selector": selector,
                    "ports": [{"name": PORT_NAME, "port": spec.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
                }
            ),
            opts=child,
        )
        # The namespace denies all ingress by default; Prometheus lives in a namespace of its own.
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-ingress",
            metadata={"name": f"{resource_name}-ingress", "namespace": args.namespace, "labels": labels},
            spec=untyped(
                {
                    "podSelector": {"matchLabels": selector},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [{"namespaceSelector": {}}],
                            "ports": [{"port": spec.port, "protocol": "TCP"}],
                        }
                    ],
                }
            ),
            opts=child,
        )
        operator_labels = {**labels, **spec.selector_labels}
        self.service_monitor: k8s.apiextensions.CustomResource | None = None
        self.rules: k8s.apiextensions.CustomResource | None = None
        if spec.prometheus_operator:
            self.service_monitor = k8s.apiextensions.CustomResource(
                f"{resource_name}-servicemonitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": resource_name, "namespace": args.namespace, "labels": operator_labels},
                spec=service_monitor_spec(selector, spec),
                opts=child,
            )
            groups = pulumi.Output.from_input(args.namespace).apply(
                lambda ns: rule_groups(
                    ns,
                    spec.alerts,
                    beat_max_interval_seconds=args.beat_max_interval_seconds,
                    worker_containers=list(args.worker_containers),
                )
            )
            self.rules = k8s.apiextensions.CustomResource(
                f"{resource_name}-rules",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata={"name": resource_name, "namespace": args.namespace, "labels": operator_labels},
                spec={"groups": groups},
                opts=child,
            )
        self.dashboard: k8s.core.v1.ConfigMap | None = None
        if spec.dashboard:
            self.dashboard = k8s.core.v1.ConfigMap(
                f"{resource_name}-dashboard",
                metadata={
                    "name": f"{resource_name}-dashboard",
                    "namespace": args.namespace,
                    "labels": {**labels, spec.dashboard_label: "1"},
                },
                data=pulumi.Output.from_input(args.namespace).apply(
                    lambda ns: {"celery-platform.json": dashboard_json(ns)}
                ),
                opts=child,
            )
        self.register_outputs({"deployment": self.deployment.metadata.name, "service": self.service.metadata.name})
