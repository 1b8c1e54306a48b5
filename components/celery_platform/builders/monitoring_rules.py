"""Alerting rules and the Grafana dashboard of a Celery platform, as plain data.

Pure functions: :mod:`celery_platform.resources.monitoring` puts them into a PrometheusRule and a ConfigMap,
and the tests run every expression through ``promtool`` (``check rules`` and ``test rules``).
Every expression is scoped to the platform's namespace. Restarts and OOM kills use
kube-state-metrics' names (``kube_pod_container_status_restarts_total``,
``kube_pod_container_status_last_terminated_reason``).
"""

from __future__ import annotations

import json
from typing import Any

from celery_platform.config.monitoring import AlertThresholds

__all__ = ["RUNBOOK_ANCHORS", "alert_rules", "dashboard", "dashboard_exprs", "rule_groups", "runbook_url"]

#: Alert name → its runbook page: docs/runbooks/<page>.md, served as runbooks/<page>/ by the docs site.
RUNBOOK_ANCHORS = {
    "CeleryQueueBacklogGrowing": "celeryqueuebackloggrowing",
    "CeleryQueueOldestMessageTooOld": "celeryqueueoldestmessagetooold",
    "CeleryQueueNoConsumer": "celeryqueuenoconsumer",
    "CeleryBeatNotTicking": "celerybeatnotticking",
    "CeleryTaskFailureRatioHigh": "celerytaskfailureratiohigh",
    "CeleryWorkerRestarting": "celeryworkerrestarting",
    "CeleryWorkerOOMKilled": "celeryworkeroomkilled",
}


def runbook_url(name: str, base_url: str) -> str:
    """The alert's runbook: ``<base_url>/runbooks/<page>/`` on the docs site, or ``docs/runbooks/<page>.md``
    (the page in this repository, relative) without a base URL."""
    page = RUNBOOK_ANCHORS[name]
    if base_url:
        return f"{base_url.rstrip('/')}/runbooks/{page}/"
    return f"docs/runbooks/{page}.md"


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "alert": name,
        "expr": expr,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
        },
    }
    if for_ != "0s":
        rule["for"] = for_
    return rule


def alert_rules(
    namespace: str, thresholds: AlertThresholds, *, beat_max_interval_seconds: int | None, worker_containers: list[str]
) -> list[dict[str, Any]]:
    """Return the alerting rules; beat's is left out when ``beat_max_interval_seconds`` is None (no beat)."""
    ns = f'namespace="{namespace}"'
    t = thresholds
    rules = [
        _alert(
            "CeleryQueueBacklogGrowing",
            f"celery_queue_messages{{{ns}}} >= {t.backlog_min_messages}"
            f" and deriv(celery_queue_messages{{{ns}}}[{t.backlog_growing_minutes}m]) > 0",
            f"{t.backlog_growing_minutes}m",
            "warning",
            "Queue {{ $labels.queue }} keeps growing",
            f"{{{{ $value }}}} messages wait in {{{{ $labels.queue }}}} and the backlog has grown for "
            f"{t.backlog_growing_minutes} minutes: consumers do not keep up.",
        ),
        _alert(
            "CeleryQueueOldestMessageTooOld",
            f"celery_queue_oldest_message_age_seconds{{{ns}}} > {t.oldest_message_age_seconds}",
            "1m",
            "warning",
            "The oldest task in {{ $labels.queue }} has waited too long",
            f"A task sent to {{{{ $labels.queue }}}} has waited {{{{ $value | humanizeDuration }}}} "
            f"(limit {t.oldest_message_age_seconds}s) without being received by a worker.",
        ),
        _alert(
            "CeleryQueueNoConsumer",
            f"celery_queue_consumers{{{ns}}} == 0",
            f"{t.no_consumer_minutes}m",
            "critical",
            "No worker consumes queue {{ $labels.queue }}",
            f"No live worker has held a consumer for {{{{ $labels.queue }}}} for {t.no_consumer_minutes} minutes: "
            "its tasks pile up.",
        ),
        _alert(
            "CeleryTaskFailureRatioHigh",
            f'(sum by (namespace, task) (rate(celery_tasks_total{{{ns},state="failed"}}'
            f"[{t.failure_ratio_window_minutes}m]))"
            f' / sum by (namespace, task) (rate(celery_tasks_total{{{ns},state=~"succeeded|failed"}}'
            f"[{t.failure_ratio_window_minutes}m]))) > {t.failure_ratio}",
            f"{t.failure_ratio_window_minutes}m",
            "warning",
            "Task {{ $labels.task }} fails too often",
            f"{{{{ $value | humanizePercentage }}}} of {{{{ $labels.task }}}} runs failed over "
            f"{t.failure_ratio_window_minutes} minutes (limit {t.failure_ratio}).",
        ),
    ]
    containers = "|".join(sorted(set(worker_containers)))
    kube = f'{ns},container=~"{containers}"'
    rules += [
        _alert(
            "CeleryWorkerRestarting",
            f"increase(kube_pod_container_status_restarts_total{{{kube}}}[1h]) >= {t.restarts_per_hour}",
            "0s",
            "warning",
            "{{ $labels.pod }} restarts",
            f"{{{{ $labels.pod }}}} restarted {{{{ $value }}}} times in an hour (limit {t.restarts_per_hour}): "
            "probes failing (not consuming, stale heartbeat) or crashes.",
        ),
        _alert(
            "CeleryWorkerOOMKilled",
            f'kube_pod_container_status_last_terminated_reason{{{kube},reason="OOMKilled"}} == 1'
            " and on (namespace, pod, container)"
            f" increase(kube_pod_container_status_restarts_total{{{kube}}}[10m]) > 0",
            "0s",
            "warning",
            "{{ $labels.pod }} was OOM-killed",
            "{{ $labels.container }} in {{ $labels.pod }} hit its memory limit and was killed with every task it ran.",
        ),
    ]
    if beat_max_interval_seconds is not None:
        limit = 2 * beat_max_interval_seconds
        rules.insert(
            3,
            _alert(
                "CeleryBeatNotTicking",
                f"(time() - celery_beat_last_tick_timestamp_seconds{{{ns}}} > {limit})"
                f" or absent(celery_beat_last_tick_timestamp_seconds{{{ns}}})",
                "1m",
                "critical",
                "Celery beat has not ticked",
                f"Beat has not run its scheduling loop for over {limit}s (2 x maxIntervalSeconds): "
                "periodic tasks are not being sent.",
            ),
        )
    for rule in rules:
        rule["annotations"]["runbook_url"] = runbook_url(rule["alert"], t.runbook_base_url)
    return rules


def rule_groups(
    namespace: str, thresholds: AlertThresholds, *, beat_max_interval_seconds: int | None, worker_containers: list[str]
) -> list[dict[str, Any]]:
    """Return the PrometheusRule's ``spec.groups`` (also a valid ``promtool check rules`` file's groups)."""
    rules = alert_rules(
        namespace, thresholds, beat_max_interval_seconds=beat_max_interval_seconds, worker_containers=worker_containers
    )
    return [{"name": "celery-platform", "rules": rules}]


def _panel(panel_id: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend} for i, (expr, legend) in enumerate(exprs)
        ],
    }


def dashboard(namespace: str) -> dict[str, Any]:
    """Return the Grafana dashboard: backlog, age, throughput, failures and workers per pool."""
    ns = f'namespace="{namespace}"'
    panels = [
        _panel(
            1,
            "Backlog: messages waiting",
            [(f"sum by (queue) (celery_queue_messages{{{ns}}})", "{{queue}}")],
            "short",
            0,
            0,
        ),
        _panel(
            2,
            "Oldest waiting task",
            [(f"max by (queue) (celery_queue_oldest_message_age_seconds{{{ns}}})", "{{queue}}")],
            "s",
            12,
            0,
        ),
        _panel(
            3,
            "Throughput: tasks succeeded per second",
            [(f'sum by (task) (rate(celery_tasks_total{{{ns},state="succeeded"}}[5m]))', "{{task}}")],
            "ops",
            0,
            8,
        ),
        _panel(
            4,
            "Failures: tasks failed, retried, rejected per second",
            [(f'sum by (task, state) (rate(celery_tasks_total{{{ns},state!="succeeded"}}[5m]))', "{{task}} {{state}}")],
            "ops",
            12,
            8,
        ),
        _panel(
            5,
            "Workers online and busy, per pool",
            [
                (f"sum by (pool) (celery_workers_online{{{ns}}})", "{{pool}} online"),
                (f"sum by (pool) (celery_pool_tasks_active{{{ns}}})", "{{pool}} active"),
                (f"sum by (pool) (celery_pool_tasks_reserved{{{ns}}})", "{{pool}} reserved"),
            ],
            "short",
            0,
            16,
        ),
        _panel(
            6,
            "Task runtime p95",
            [
                (
                    "histogram_quantile(0.95, sum by (task, le)"
                    f" (rate(celery_task_runtime_seconds_bucket{{{ns}}}[5m])))",
                    "{{task}}",
                )
            ],
            "s",
            12,
            16,
        ),
        _panel(
            7,
            "Consumers per queue",
            [(f"sum by (queue) (celery_queue_consumers{{{ns}}})", "{{queue}}")],
            "short",
            0,
            24,
        ),
    ]
    return {
        "uid": f"celery-platform-{namespace}"[:40],
        "title": f"Celery platform ({namespace})",
        "tags": ["celery", "celery-platform"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]
        },
        "panels": panels,
    }


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    """Return every PromQL expression of a dashboard's panels, for promtool to parse."""
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def dashboard_json(namespace: str) -> str:
    """Return the dashboard as the JSON text Grafana's sidecar loads, deterministic."""
    return json.dumps(dashboard(namespace), indent=2, sort_keys=True) + "\n"
