"""The monitoring builders (exporter pod, ServiceMonitor, rules, dashboard), the component and its refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from celery_platform.builders.exporter import exporter_plan, exporter_pod_spec, exporter_source, service_monitor_spec
from celery_platform.builders.monitoring_rules import RUNBOOK_ANCHORS, alert_rules, dashboard, dashboard_exprs
from celery_platform.config.monitoring import AlertThresholds, MonitoringSpec
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config
from celery_platform.render import run_program
from celery_platform.render.stack_files import stack_config

VALID: dict[str, Any] = {
    "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
    "image": "registry.example.com/app:1.0.0",
    "pools": "- {name: main, queues: [default]}",
}
ALERTS = [
    "CeleryQueueBacklogGrowing",
    "CeleryQueueOldestMessageTooOld",
    "CeleryQueueNoConsumer",
    "CeleryBeatNotTicking",
    "CeleryTaskFailureRatioHigh",
    "CeleryWorkerRestarting",
    "CeleryWorkerOOMKilled",
]


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_stack_config({**VALID, **raw})
    return [str(p) for p in caught.value.problems]


def rendered(stack: str, **overrides: str) -> list[dict[str, Any]]:
    config, secret_keys = stack_config(stack)
    config = {**config, **{f"celery-platform:{k}": v for k, v in overrides.items()}}
    return run_program(stack, config, secret_keys).mocks.ordered()


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_monitoring_is_on_by_default_with_every_threshold_defaulted() -> None:
    config = parse_stack_config(VALID)
    assert config.monitoring == MonitoringSpec()
    assert config.monitoring.enabled and config.monitoring.prometheus_operator and config.monitoring.dashboard
    assert config.monitoring.alerts == AlertThresholds()


def test_every_threshold_is_a_stack_key_under_monitoring_alerts() -> None:
    config = parse_stack_config(
        {
            **VALID,
            "monitoring": "alerts: {backlogGrowingMinutes: 7, backlogMinMessages: 3, oldestMessageAgeSeconds: 99, "
            "noConsumerMinutes: 2, failureRatio: 0.2, failureRatioWindowMinutes: 4, restartsPerHour: 6}",
        }
    )
    rules = {
        r["alert"]: r
        for r in alert_rules("ns", config.monitoring.alerts, beat_max_interval_seconds=11, worker_containers=["worker"])
    }
    assert rules["CeleryQueueBacklogGrowing"]["for"] == "7m" and ">= 3" in rules["CeleryQueueBacklogGrowing"]["expr"]
    assert "> 99" in rules["CeleryQueueOldestMessageTooOld"]["expr"]
    assert rules["CeleryQueueNoConsumer"]["for"] == "2m"
    assert (
        "> 0.2" in rules["CeleryTaskFailureRatioHigh"]["expr"] and "[4m]" in rules["CeleryTaskFailureRatioHigh"]["expr"]
    )
    assert ">= 6" in rules["CeleryWorkerRestarting"]["expr"]
    assert "> 22" in rules["CeleryBeatNotTicking"]["expr"], "2 x maxIntervalSeconds"


def test_fails_when_monitoring_settings_are_out_of_range_and_lists_every_problem() -> None:
    messages = problems_of(
        {
            "monitoring": "port: 80\nscrapeIntervalSeconds: 1\nimage: exporter:latest\n"
            "alerts: {failureRatio: 1.5, noConsumerMinutes: 0}\n"
            "resources: {requests: {cpu: 200m, memory: 96Mi}, limits: {cpu: 100m, memory: 192Mi}}"
        }
    )
    fields = sorted(m.split(":", 1)[0] for m in messages)
    assert fields == [
        "monitoring.alerts.failureRatio",
        "monitoring.alerts.noConsumerMinutes",
        "monitoring.image",
        "monitoring.port",
        "monitoring.resources.limits.cpu",
        "monitoring.scrapeIntervalSeconds",
    ], messages
    assert any("(got 80, expected a port in 1024..65535)" in m for m in messages)


def test_fails_when_a_monitoring_key_is_unknown() -> None:
    [message] = problems_of({"monitoring": "alerts: {backlogMinutes: 3}"})
    assert message.startswith("monitoring.alerts.backlogMinutes: unknown key")


def test_fails_when_the_quota_cannot_also_fit_the_exporter() -> None:
    # Room for Redis (100m), one worker and its rollout surge (2 x 100m) and beat (50m), not the exporter (50m).
    quota = "requestsCpu: 380m\nrequestsMemory: 8Gi\nlimitsCpu: '8'\nlimitsMemory: 16Gi\npods: 20"
    messages = problems_of({"quota": quota})
    assert any(m.startswith("quota.requestsCpu: ") and "monitoring 1 x 50m" in m for m in messages), messages
    assert parse_stack_config({**VALID, "quota": quota, "monitoring": "enabled: false"}).monitoring.enabled is False


def test_the_exporter_pod_is_restricted_with_resources_probes_and_the_broker_url_by_reference() -> None:
    spec = MonitoringSpec()
    pod = exporter_pod_spec(
        image="app:1",
        spec=spec,
        queues=["b", "a", "b"],
        broker_secret_name="broker",
        config_map="cm",
        run_as_user=10001,
    )
    [container] = pod["containers"]
    assert container["command"] == ["python", "-m", "celery_platform_exporter"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "100m", "memory": "192Mi"},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in container["env"]}
    assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {"name": "broker", "key": "CELERY_BROKER_URL"}
    assert env["CELERY_PLATFORM_EXPORTER_QUEUES"]["value"] == "a,b"
    assert exporter_plan(image="app:1", spec=spec, queues=["a"], run_as_user=1).surge == 0


def test_the_exporter_module_is_shipped_with_the_package() -> None:
    source = exporter_source()
    assert "prometheus_client" in source and "def main()" in source


def test_the_service_monitor_scrapes_the_metrics_port_at_the_configured_interval() -> None:
    monitor = service_monitor_spec({"a": "b"}, MonitoringSpec(scrape_interval_seconds=15))
    assert monitor["selector"] == {"matchLabels": {"a": "b"}}
    assert monitor["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]


def test_every_alert_is_namespaced_and_has_a_runbook_section() -> None:
    rules = alert_rules("celery-dev", AlertThresholds(), beat_max_interval_seconds=10, worker_containers=["worker"])
    assert [r["alert"] for r in rules] == ALERTS
    assert set(RUNBOOK_ANCHORS) == set(ALERTS)
    for rule in rules:
        assert 'namespace="celery-dev"' in rule["expr"], rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{rule['alert'].lower()}.md"
    restarts = next(r for r in rules if r["alert"] == "CeleryWorkerRestarting")
    assert "kube_pod_container_status_restarts_total" in restarts["expr"]


def test_without_beat_there_is_no_beat_alert() -> None:
    rules = alert_rules("ns", AlertThresholds(), beat_max_interval_seconds=None, worker_containers=["worker"])
    assert "CeleryBeatNotTicking" not in [r["alert"] for r in rules]


def test_the_dashboard_shows_backlog_age_throughput_failures_and_workers_per_pool() -> None:
    board = dashboard("celery-dev")
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for word in ("backlog", "oldest", "throughput", "failures", "per pool"):
        assert word in titles
    exprs = dashboard_exprs(board)
    assert all('namespace="celery-dev"' in e for e in exprs)
    assert any("celery_workers_online" in e for e in exprs)
    json.dumps(board)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_deploys_the_exporter_its_service_monitor_rules_and_dashboard(stack: str) -> None:
    docs = rendered(stack)
    [deployment] = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "celery-exporter"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"} and deployment["spec"]["replicas"] == 1
    [monitor] = of_kind(docs, "ServiceMonitor")
    [rule] = of_kind(docs, "PrometheusRule")
    assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]] == ALERTS
    [board] = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert json.loads(board["data"]["celery-platform.json"])["panels"]
    assert monitor["spec"]["selector"]["matchLabels"] == {
        k: v for k, v in deployment["spec"]["selector"]["matchLabels"].items()
    }
    [policy] = [d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == "celery-exporter-ingress"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": 9808, "protocol": "TCP"}]


def test_clusters_without_the_prometheus_operator_opt_out_of_its_objects_only() -> None:
    docs = rendered("dev", monitoring="prometheusOperator: false")
    assert of_kind(docs, "ServiceMonitor") == of_kind(docs, "PrometheusRule") == []
    assert [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "celery-exporter"]


def test_monitoring_can_be_turned_off_entirely() -> None:
    docs = rendered("dev", monitoring="enabled: false")
    assert not [d for d in docs if "exporter" in d["metadata"]["name"]]
    assert of_kind(docs, "ServiceMonitor") == []


def test_every_alert_has_a_runbook_page_that_says_what_it_means_and_the_first_command() -> None:
    from pathlib import Path

    runbooks = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
    for alert in ALERTS:
        page = (runbooks / f"{alert.lower()}.md").read_text()
        assert "First:" in page and "`kubectl" in page, alert


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_exporter_sweeps_with_the_workers_visibility_timeout(stack: str) -> None:
    from celery_platform.render import render_documents

    docs = render_documents(stack)
    env_of = {
        d["metadata"]["name"]: {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for d in docs
        if d["kind"] == "Deployment"
    }
    exporter = env_of.pop("celery-exporter")
    workers = {env["CELERY_VISIBILITY_TIMEOUT_SECONDS"] for env in env_of.values()}
    assert workers == {exporter["CELERY_VISIBILITY_TIMEOUT_SECONDS"]}


@pytest.mark.parametrize("base", ["https://acme.github.io/celery-platform", "https://docs.example.com/celery/"])
def test_a_runbook_base_url_makes_every_runbook_link_an_absolute_page_of_the_docs_site(base: str) -> None:
    config = parse_stack_config(
        {
            "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
            "image": "registry.example.com/app:1.0.0",
            "pools": "- {name: main, queues: [default]}",
            "monitoring": json.dumps({"alerts": {"runbookBaseUrl": base}}),
        }
    )
    rules = alert_rules("ns", config.monitoring.alerts, beat_max_interval_seconds=10, worker_containers=["worker"])
    root = base.rstrip("/")
    assert [r["annotations"]["runbook_url"] for r in rules] == [f"{root}/runbooks/{r['alert'].lower()}/" for r in rules]
    urls = [r["annotations"]["runbook_url"] for r in rules]
    assert not [u for u in urls if "README.md" in u or "#" in u]


@pytest.mark.parametrize(
    "url",
    [
        "README.md",
        "ftp://example.com/r",
        "https://example.com/r#anchor",
        "https://example.com/r?page=1",
        "https://exa mple.com/r",
        "https:///r",
        "https://x/\n",
    ],
)
def test_fails_when_the_runbook_base_url_is_not_an_absolute_http_url(url: str) -> None:
    with pytest.raises(ValidationError, match=r"monitoring\.alerts\.runbookBaseUrl: not an absolute http\(s\) URL"):
        parse_stack_config(
            {
                "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
                "image": "registry.example.com/app:1.0.0",
                "pools": "- {name: main, queues: [default]}",
                "monitoring": json.dumps({"alerts": {"runbookBaseUrl": url}}),
            }
        )
