"""promtool checks the rendered alerting rules, proves each alert on synthetic series, and parses the
dashboard's queries.

``promtool test rules`` compares annotations too, and ours are templates whose text is not what these
tests are about, so the rules it runs are the rendered ones with annotations dropped; ``promtool check
rules`` checks the full rendered rules, templates included.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from celery_platform.builders.monitoring_rules import dashboard, dashboard_exprs, rule_groups
from celery_platform.config.monitoring import AlertThresholds
from celery_platform.render import run_program
from celery_platform.render.stack_files import stack_config

HERE = Path(__file__).resolve().parent
NAMESPACE = "celery-test"


def promtool_run(promtool: Path, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed ({done.returncode}):\n{output}"
    return output


def write_rules(path: Path, groups: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def rendered_rule_groups(stack: str) -> list[dict[str, Any]]:
    config, secret_keys = stack_config(stack)
    docs = run_program(stack, config, secret_keys).mocks.ordered()
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def test_promtool_accepts_the_rules_rendered_for_each_stack(promtool: Path, tmp_path: Path) -> None:
    for stack in ("dev", "prod"):
        path = write_rules(tmp_path / f"{stack}.yaml", rendered_rule_groups(stack))
        output = promtool_run(promtool, "check", "rules", str(path))
        assert "SUCCESS: 7 rules found" in output, output


def test_each_alert_fires_on_a_faulty_series_and_stays_quiet_on_a_healthy_one(promtool: Path, tmp_path: Path) -> None:
    groups = rule_groups(NAMESPACE, AlertThresholds(), beat_max_interval_seconds=30, worker_containers=["worker"])
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")
    write_rules(tmp_path / "rules.yaml", groups)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    tested = {
        t["alertname"]
        for case in yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
        for t in case["alert_rule_test"]
        if t["exp_alerts"]
    }
    assert tested == {r["alert"] for r in groups[0]["rules"]}, "every alert has a firing case"
    output = promtool_run(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert "SUCCESS" in output, output


def test_promtool_fails_a_rule_test_whose_alert_does_not_fire(promtool: Path, tmp_path: Path) -> None:
    # The harness itself can fail: a healthy series expected to fire makes promtool exit non-zero.
    groups = rule_groups(NAMESPACE, AlertThresholds(), beat_max_interval_seconds=30, worker_containers=["worker"])
    write_rules(tmp_path / "rules.yaml", groups)
    case = {
        "interval": "1m",
        "input_series": [{"series": f'celery_queue_consumers{{namespace="{NAMESPACE}",queue="q"}}', "values": "1x20"}],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "CeleryQueueNoConsumer",
                "exp_alerts": [{"exp_labels": {"severity": "critical", "namespace": NAMESPACE, "queue": "q"}}],
            }
        ],
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": [case]}))
    done = subprocess.run([str(promtool), "test", "rules", "t.yaml"], cwd=tmp_path, capture_output=True, check=False)
    assert done.returncode != 0


def test_every_dashboard_query_parses_as_promql(promtool: Path, tmp_path: Path) -> None:
    exprs = dashboard_exprs(dashboard(NAMESPACE))
    rules = [{"record": f"celery_platform:dashboard_query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = write_rules(tmp_path / "dashboard.yaml", [{"name": "dashboard-queries", "rules": rules}])
    output = promtool_run(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(exprs)} rules found" in output, output
