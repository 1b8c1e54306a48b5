"""Every duration we render for Prometheus: our rule and promtool agree, case by case, at the limit and past it.

Our verdict is the field's own rule (``AlertThresholds.validate`` / ``MonitoringSpec.validate``). The
other verdict is promtool's on what the same pure builders render from that value, whether or not our
rule accepted it: ``promtool check rules`` on the rule group (``for:`` and range selectors), ``promtool
check config`` on a scrape config with the ServiceMonitor endpoint's interval and scrapeTimeout (which
the Prometheus Operator copies into Prometheus' scrape config as they are).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from celery_platform.builders.exporter import service_monitor_spec
from celery_platform.builders.monitoring_rules import rule_groups
from celery_platform.config.durations import prometheus_max
from celery_platform.config.monitoring import AlertThresholds, MonitoringSpec

MINUTES_FIELDS = {
    "backlog_growing_minutes": "backlogGrowingMinutes",
    "no_consumer_minutes": "noConsumerMinutes",
    "failure_ratio_window_minutes": "failureRatioWindowMinutes",
}
MAX_MINUTES = prometheus_max("m")
MAX_SECONDS = prometheus_max("s")


def _promtool(promtool: Path, *args: str) -> tuple[bool, str]:
    done = subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120, check=False)
    return done.returncode == 0, done.stdout + done.stderr


def _edges(maximum: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(maximum - 3, maximum + 3),
        st.integers(1, 10**13),
        st.sampled_from([1, 2**31 - 1, 2**53 - 1, maximum * 60, 10**19]),
    )


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(MINUTES_FIELDS)), minutes=_edges(MAX_MINUTES))
@example(field="no_consumer_minutes", minutes=MAX_MINUTES)
@example(field="no_consumer_minutes", minutes=MAX_MINUTES + 1)
@example(field="no_consumer_minutes", minutes=2147483647)
@example(field="backlog_growing_minutes", minutes=MAX_MINUTES)
@example(field="backlog_growing_minutes", minutes=MAX_MINUTES + 1)
@example(field="failure_ratio_window_minutes", minutes=MAX_MINUTES)
@example(field="failure_ratio_window_minutes", minutes=MAX_MINUTES + 1)
def test_promtool_loads_a_rule_group_exactly_when_we_accept_its_minutes(
    promtool: Path, tmp_path: Path, field: str, minutes: int
) -> None:
    thresholds = dataclasses.replace(AlertThresholds(), **{field: minutes})
    ours = [p for p in thresholds.validate("monitoring.alerts") if p.field.endswith(MINUTES_FIELDS[field])]
    groups = rule_groups("celery-test", thresholds, beat_max_interval_seconds=30, worker_containers=["worker"])
    path = tmp_path / f"rules-{field}-{minutes}.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    loads, output = _promtool(promtool, "check", "rules", str(path))
    assert (not ours) == loads, f"{field}={minutes}: ours {ours}, promtool:\n{output}"


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=_edges(MAX_SECONDS))
@example(seconds=MAX_SECONDS)
@example(seconds=MAX_SECONDS + 1)
@example(seconds=5)
@example(seconds=4)
def test_promtool_loads_a_scrape_config_exactly_when_we_accept_its_interval(
    promtool: Path, tmp_path: Path, seconds: int
) -> None:
    spec = dataclasses.replace(MonitoringSpec(), scrape_interval_seconds=seconds)
    ours = [p for p in spec.validate("monitoring") if p.field == "monitoring.scrapeIntervalSeconds"]
    [endpoint] = service_monitor_spec({"app": "exporter"}, spec)["endpoints"]
    config: dict[str, Any] = {
        "scrape_configs": [
            {
                "job_name": "exporter",
                "scrape_interval": endpoint["interval"],
                "scrape_timeout": endpoint["scrapeTimeout"],
                "static_configs": [{"targets": ["127.0.0.1:9808"]}],
            }
        ]
    }
    path = tmp_path / f"prometheus-{seconds}.yml"
    path.write_text(yaml.safe_dump(config))
    loads, output = _promtool(promtool, "check", "config", "--syntax-only", str(path))
    # Below 5 s we refuse what Prometheus would load (a scrape must fit its 5 s timeout floor): ours is stricter.
    if seconds >= 5:
        assert (not ours) == loads, f"interval {seconds}s: ours {ours}, promtool:\n{output}"
    else:
        assert ours


def test_the_maximum_loads_and_one_more_is_refused_by_both(promtool: Path, tmp_path: Path) -> None:
    """The limit itself, named: MAX loads in promtool and passes our rule; MAX + 1 fails both."""
    for minutes, expected in ((MAX_MINUTES, True), (MAX_MINUTES + 1, False)):
        thresholds = AlertThresholds(no_consumer_minutes=minutes)
        groups = rule_groups("celery-test", thresholds, beat_max_interval_seconds=30, worker_containers=["worker"])
        path = tmp_path / f"max-{minutes}.yaml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        loads, output = _promtool(promtool, "check", "rules", str(path))
        assert loads is expected, output
        assert (not thresholds.validate("monitoring.alerts")) is expected
    assert MAX_MINUTES == 153722867
