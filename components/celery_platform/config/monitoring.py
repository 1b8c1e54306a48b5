"""Monitoring settings: the exporter, the Prometheus Operator objects, the dashboard and the alert thresholds.

The exporter's pod is built in :mod:`celery_platform.builders.exporter`, the alert rules and the
dashboard in :mod:`celery_platform.builders.monitoring_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from celery_platform.config.durations import check_prometheus_duration
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.secret_values import host_ok
from celery_platform.config.specs import PodResources, pod_resources
from celery_platform.config.validation import check_count, check_image_pinned, check_labels, check_qualified_name


def check_runbook_base_url(field: str, url: str) -> list[Problem]:
    """An absolute http(s) URL without a query or fragment (each alert's page path is appended), or empty."""
    if url == "":
        return []
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and host_ok(parts.hostname) and not parts.fragment and not parts.query
    except ValueError:
        ok = False
    if ok and not any(c.isspace() or not c.isprintable() for c in url):
        return []
    return [
        Problem(
            field,
            "not an absolute http(s) URL without a ?query or #fragment",
            shown(url),
            "the docs site's root, e.g. https://acme.github.io/celery-platform",
        )
    ]


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
    runbook_base_url: str = ""
    """Absolute http(s) URL of your published docs site (``make docs`` builds it), e.g.
    ``https://acme.github.io/celery-platform``; each alert's ``runbook_url`` is then
    ``<it>/runbooks/<alert name in lower case>/``, which opens from Alertmanager, Slack or PagerDuty; unset,
    it is the page's path in this repository, relative, which they cannot open.
    Default: empty (``docs/runbooks/<alert name in lower case>.md``)."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the thresholds."""
        # Rendered as Prometheus durations (for: and range selectors): Prometheus' limit, not int32's.
        problems = check_prometheus_duration(f"{field}.backlogGrowingMinutes", self.backlog_growing_minutes, "m")
        problems += check_count(f"{field}.backlogMinMessages", self.backlog_min_messages, 0)
        problems += check_count(f"{field}.oldestMessageAgeSeconds", self.oldest_message_age_seconds, 1)
        problems += check_prometheus_duration(f"{field}.noConsumerMinutes", self.no_consumer_minutes, "m")
        window = self.failure_ratio_window_minutes
        problems += check_prometheus_duration(f"{field}.failureRatioWindowMinutes", window, "m")
        problems += check_count(f"{field}.restartsPerHour", self.restarts_per_hour, 1)
        problems += check_runbook_base_url(f"{field}.runbookBaseUrl", self.runbook_base_url)
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
    pod: PodSettings | None = None
    """The exporter's own pod settings, over the platform's ``pod`` as a pool's or beat's are: each field
    set here replaces the platform's (e.g. ``serviceAccount: {}`` for the namespace's default account).
    The exporter takes the identity, pull secrets, placement, priority and pod metadata; the app's env,
    envFrom, volumes, volumeMounts and pythonPath are for the app's code, which it does not run, so they
    are refused here. Default: unset (the platform's pod settings)."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the monitoring settings."""
        problems = self.resources.validate(f"{field}.resources") + self.alerts.validate(f"{field}.alerts")
        if self.image:
            problems += check_image_pinned(f"{field}.image", self.image)
        if not 1024 <= self.port <= 65535:
            problems.append(Problem(f"{field}.port", "out of range", shown(self.port), "a port in 1024..65535"))
        problems += check_prometheus_duration(f"{field}.scrapeIntervalSeconds", self.scrape_interval_seconds, "s", 5)
        # Labels of the ServiceMonitor, the PrometheusRule and the dashboard ConfigMap: Kubernetes labels.
        problems += check_labels(f"{field}.selectorLabels", self.selector_labels)
        problems += check_qualified_name(f"{field}.dashboardLabel", self.dashboard_label, "label key")
        if self.pod is not None:
            problems += self.pod.validate(f"{field}.pod") + exporter_pod_problems(f"{field}.pod", self.pod)
        return problems


# PodSettings fields that configure the app's container; the exporter runs only the shipped module.
APP_ONLY_POD_FIELDS = (
    ("env", "env"),
    ("env_from", "envFrom"),
    ("volumes", "volumes"),
    ("volume_mounts", "volumeMounts"),
    ("python_path", "pythonPath"),
)


def exporter_pod_problems(field: str, pod: PodSettings) -> list[Problem]:
    """The exporter's override: no app-only field, and no ServiceAccount of its own to create."""
    problems = [
        Problem(f"{field}.{name}", "is the app's, and the exporter runs no app code", "a value", "unset")
        for attr, name in APP_ONLY_POD_FIELDS
        if getattr(pod, attr) is not None
    ]
    if pod.service_account is not None and pod.service_account.create:
        problems.append(
            Problem(
                f"{field}.serviceAccount.create",
                "the exporter creates no ServiceAccount",
                "true",
                "an existing account's name, or create it under pod.serviceAccount",
            )
        )
    return problems
