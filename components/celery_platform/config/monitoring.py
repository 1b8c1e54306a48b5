"""Monitoring settings and the pure builders of the exporter's pod, Service and ServiceMonitor.

No Pulumi resources here: :mod:`celery_platform.resources.monitoring` creates them, the stack's admission
arithmetic plans the exporter pod with :func:`exporter_plan`, and plain pytest tests both. The alert
rules and the dashboard are built in :mod:`celery_platform.build.monitoring_rules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.resources import files
from typing import Any

from celery_platform.build.admission import PodPlan
from celery_platform.build.workloads import TMP_MOUNT, build_pod_spec, secret_env, security_context
from celery_platform.config.specs import PodResources, pod_resources
from celery_platform.config.validation import Problem, args_schema, check_count, check_image_pinned, shown

__all__ = [
    "EXPORTER_FILENAME",
    "EXPORTER_MODULE",
    "EXPORTER_MOUNT_PATH",
    "PORT_NAME",
    "AlertThresholds",
    "MonitoringSpec",
    "exporter_container",
    "exporter_plan",
    "exporter_pod_spec",
    "exporter_source",
    "service_monitor_spec",
]

EXPORTER_MODULE = "celery_platform_exporter"
EXPORTER_FILENAME = f"{EXPORTER_MODULE}.py"
EXPORTER_MOUNT_PATH = "/etc/celery-platform/exporter"
PORT_NAME = "metrics"


@args_schema
@dataclass(frozen=True, kw_only=True)
class AlertThresholds:
    """Thresholds of the PrometheusRule's alerts; each is a stack key under ``monitoring.alerts``."""

    backlog_growing_minutes: int = 15
    """CeleryQueueBacklogGrowing: how long a queue's backlog must keep growing. Default: ``15``."""
    backlog_min_messages: int = 10
    """CeleryQueueBacklogGrowing: ignore backlogs smaller than this. Default: ``10``."""
    oldest_message_age_seconds: int = 600
    """CeleryQueueOldestMessageTooOld: age of the oldest waiting task (needs task-sent events). Default: ``600``."""
    no_consumer_minutes: int = 5
    """CeleryQueueNoConsumer: how long a queue may have no consumer. Default: ``5``."""
    failure_ratio: Decimal = Decimal("0.05")
    """CeleryTaskFailureRatioHigh: failed / (succeeded + failed) of one task name. Default: ``0.05``."""
    failure_ratio_window_minutes: int = 15
    """CeleryTaskFailureRatioHigh: the window of that ratio, and how long it must hold. Default: ``15``."""
    restarts_per_hour: int = 3
    """CeleryWorkerRestarting: container restarts of one worker pod in an hour. Default: ``3``."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the thresholds."""
        problems = check_count(f"{field}.backlogGrowingMinutes", self.backlog_growing_minutes, 1)
        problems += check_count(f"{field}.backlogMinMessages", self.backlog_min_messages, 0)
        problems += check_count(f"{field}.oldestMessageAgeSeconds", self.oldest_message_age_seconds, 1)
        problems += check_count(f"{field}.noConsumerMinutes", self.no_consumer_minutes, 1)
        problems += check_count(f"{field}.failureRatioWindowMinutes", self.failure_ratio_window_minutes, 1)
        problems += check_count(f"{field}.restartsPerHour", self.restarts_per_hour, 1)
        if not Decimal(0) < self.failure_ratio < Decimal(1):
            problems.append(
                Problem(f"{field}.failureRatio", "out of range", shown(self.failure_ratio), "a ratio between 0 and 1")
            )
        return problems


@args_schema
@dataclass(frozen=True, kw_only=True)
class MonitoringSpec:
    """The metrics exporter, the Prometheus Operator objects and the Grafana dashboard."""

    enabled: bool = True
    """Deploy the exporter (a Deployment and a Service) at all. Default: ``True``."""
    prometheus_operator: bool = True
    """Create a ServiceMonitor and a PrometheusRule; turn off on clusters without the Prometheus
    Operator's CRDs. Default: ``True``."""
    dashboard: bool = True
    """Create the Grafana dashboard ConfigMap (picked up by Grafana's sidecar). Default: ``True``."""
    image: str = ""
    """Exporter image: needs Celery, kombu and ``prometheus-client``. Empty means the app image.
    Default: ``""``."""
    port: int = 9808
    """Port of ``/metrics``, ``/livez`` and ``/readyz``. Default: ``9808``."""
    scrape_interval_seconds: int = 30
    """ServiceMonitor scrape interval. Default: ``30``."""
    selector_labels: dict[str, str] = field(default_factory=dict)
    """Labels the cluster's Prometheus selects ServiceMonitors and rules by (e.g. ``release``).
    Default: none."""
    dashboard_label: str = "grafana_dashboard"
    """Label key Grafana's dashboard sidecar watches (its value is ``"1"``). Default: ``"grafana_dashboard"``."""
    resources: PodResources = field(default_factory=lambda: pod_resources("50m", "96Mi", "100m", "192Mi"))
    """Exporter container resources. Default: ``50m``/``96Mi`` requests, ``100m``/``192Mi`` limits."""
    alerts: AlertThresholds = field(default_factory=AlertThresholds)
    """Alert thresholds. Default: ``AlertThresholds()``."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the monitoring settings."""
        problems = self.resources.validate(f"{field}.resources") + self.alerts.validate(f"{field}.alerts")
        if self.image:
            problems += check_image_pinned(f"{field}.image", self.image)
        if not 1024 <= self.port <= 65535:
            problems.append(Problem(f"{field}.port", "out of range", shown(self.port), "a port in 1024..65535"))
        problems += check_count(f"{field}.scrapeIntervalSeconds", self.scrape_interval_seconds, 5)
        if not self.dashboard_label.strip():
            problems.append(Problem(f"{field}.dashboardLabel", "is empty", shown(self.dashboard_label), "a label key"))
        return problems


def exporter_source() -> str:
    """Return the text of celery_platform_exporter.py, for the ConfigMap; works from an installed package."""
    return files("celery_platform").joinpath("exporter").joinpath(EXPORTER_FILENAME).read_text(encoding="utf-8")


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
        "successThreshold": 1,
    }


def exporter_container(
    *,
    image: str,
    spec: MonitoringSpec,
    queues: Sequence[str],
    broker_secret_name: Any,
    broker_secret_key: str = "CELERY_BROKER_URL",
    visibility_timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """Return the exporter container: python -m the shipped module, the broker URL by reference.

    With ``visibility_timeout_seconds`` (the workers'), it also returns hard-killed workers' tasks to
    their queues after that timeout, as a running worker would.
    """
    sweep = (
        [{"name": "CELERY_VISIBILITY_TIMEOUT_SECONDS", "value": str(visibility_timeout_seconds)}]
        if visibility_timeout_seconds is not None
        else []
    )
    return {
        "name": "exporter",
        "image": spec.image or image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", EXPORTER_MODULE],
        "env": [
            secret_env("CELERY_BROKER_URL", broker_secret_name, broker_secret_key),
            {"name": "CELERY_PLATFORM_EXPORTER_QUEUES", "value": ",".join(sorted(set(queues)))},
            {"name": "CELERY_PLATFORM_EXPORTER_PORT", "value": str(spec.port)},
            {"name": "PYTHONPATH", "value": EXPORTER_MOUNT_PATH},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *sweep,
        ],
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "resources": spec.resources.to_k8s(),
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": TMP_MOUNT},
            {"name": "exporter", "mountPath": EXPORTER_MOUNT_PATH, "readOnly": True},
        ],
        # Ready while connected to the broker; live while its event loop turns (a broker outage is
        # ridden out by reconnecting, not by a restart).
        "startupProbe": _http_probe("/livez", period=2, failures=30),
        "livenessProbe": _http_probe("/livez", period=10, failures=3),
        "readinessProbe": _http_probe("/readyz", period=10, failures=3),
    }


def exporter_pod_spec(
    *,
    image: str,
    spec: MonitoringSpec,
    queues: Sequence[str],
    broker_secret_name: Any,
    config_map: Any,
    run_as_user: int,
    broker_secret_key: str = "CELERY_BROKER_URL",
    visibility_timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """Return the exporter's restricted pod spec (the same function feeds admission and the Deployment)."""
    return build_pod_spec(
        container=exporter_container(
            image=image,
            spec=spec,
            queues=queues,
            broker_secret_name=broker_secret_name,
            broker_secret_key=broker_secret_key,
            visibility_timeout_seconds=visibility_timeout_seconds,
        ),
        init_containers=[],
        volumes=[
            {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
            {"name": "exporter", "configMap": {"name": config_map, "defaultMode": 0o444}},
        ],
        run_as_user=run_as_user,
        grace_seconds=30,
    )


def exporter_plan(*, image: str, spec: MonitoringSpec, queues: Sequence[str], run_as_user: int) -> PodPlan:
    """Return the exporter pod as admission sees it: one replica, Recreate, so no surge."""
    pod_spec = exporter_pod_spec(
        image=image,
        spec=spec,
        queues=queues,
        broker_secret_name="broker",
        config_map="exporter",
        run_as_user=run_as_user,
    )
    return PodPlan(owner="monitoring", replicas=1, surge=0, pod_spec=pod_spec)


def service_monitor_spec(selector: Mapping[str, str], spec: MonitoringSpec) -> dict[str, Any]:
    """Return the ServiceMonitor spec that scrapes the exporter Service's metrics port."""
    return {
        "selector": {"matchLabels": dict(selector)},
        "endpoints": [
            {
                "port": PORT_NAME,
                "path": "/metrics",
                "interval": f"{spec.scrape_interval_seconds}s",
                # A scrape reads every queue's depth from the broker: give it the whole interval.
                "scrapeTimeout": f"{max(spec.scrape_interval_seconds - 5, 5)}s",
            }
        ],
    }
