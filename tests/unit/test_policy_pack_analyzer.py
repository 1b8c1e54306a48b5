"""The policy pack served the way the Pulumi CLI runs it, driven over the analyzer gRPC protocol.

The CLI starts a Python policy pack as `python -m pulumi.policy <engine> <pack dir>`, reads the port
it prints, then calls GetAnalyzerInfo, Configure, Analyze (per resource) and AnalyzeStack. This test
does the same without a CLI, so it proves that policy/__main__.py wires every validate function,
reads its config and reports at the mandatory level. It never imports policy/__main__.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(POLICY_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            proc.kill()
            _, stderr = proc.communicate(timeout=10)
            pytest.fail(f"policy pack did not start (printed {port!r}):\n{stderr}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def _configure(stub: Any, **properties: dict[str, Any]) -> None:
    """Configure every policy mandatory, as the CLI does, with `properties[policy]` as its config."""
    info = stub.GetAnalyzerInfo(empty_pb2.Empty())
    stub.Configure(
        analyzer_pb2.ConfigureAnalyzerRequest(
            policyConfig={
                policy.name: analyzer_pb2.PolicyConfig(
                    enforcementLevel=analyzer_pb2.MANDATORY, properties=_struct(properties.get(policy.name, {}))
                )
                for policy in info.policies
            }
        )
    )


def _analyze(stub: Any, props: dict[str, Any], resource_type: str = DEPLOYMENT) -> list[Any]:
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        properties=_struct(props),
        name="beat",
        urn=f"urn:pulumi:dev::celery-platform::{resource_type}::beat",
    )
    return list(stub.Analyze(request).diagnostics)


def _report_deployment(cpu_limit: str = "800m") -> dict[str, Any]:
    """The report's beat Deployment: 2 replicas, :latest, /proc probe, literal SECRET_KEY, root."""
    container = {
        "name": "celery-beat",
        "image": "app:latest",
        "command": ["celery"],
        "args": ["-A", "shop", "beat"],
        "env": [{"name": "SECRET_KEY", "value": "x"}],
        "resources": {"requests": {"cpu": "400m", "memory": "512Mi"}, "limits": {"cpu": cpu_limit, "memory": "1Gi"}},
        "livenessProbe": {"exec": {"command": ["sh", "-c", "grep -q celery /proc/1/cmdline"]}},
    }
    return {
        "metadata": {"name": "celery-beat"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
    }


def test_the_pack_announces_its_nine_policies_as_mandatory(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "celery-platform-guardrails"
    assert {p.name for p in info.policies} == {
        "containers-have-bounded-resources",
        "images-are-pinned",
        "probes-check-health",
        "celery-beat-runs-at-most-once",
        "celery-beat-is-not-autoscaled",
        "autoscaled-workloads-leave-replicas-to-the-autoscaler",
        "autoscaler-credentials-come-from-secrets",
        "secrets-come-from-secret-refs",
        "pods-are-restricted",
    }
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


def test_fails_when_the_reports_beat_deployment_is_analyzed(analyzer: Any) -> None:
    _configure(analyzer)
    diagnostics = _analyze(analyzer, _report_deployment())
    assert {d.enforcementLevel for d in diagnostics} == {analyzer_pb2.MANDATORY}
    assert {d.policyName for d in diagnostics} == {
        "images-are-pinned",
        "probes-check-health",
        "celery-beat-runs-at-most-once",
        "secrets-come-from-secret-refs",
        "pods-are-restricted",
    }


def test_fails_when_the_configured_cpu_ratio_of_1_5_meets_400m_800m(analyzer: Any) -> None:
    _configure(analyzer, **{"containers-have-bounded-resources": {"maxCpuLimitRequestRatio": 1.5}})
    flagged = [
        d.message
        for d in _analyze(analyzer, _report_deployment())
        if d.policyName == "containers-have-bounded-resources"
    ]
    assert len(flagged) == 1 and "at most 1.5 is allowed" in flagged[0]
    _configure(analyzer)
    assert not [
        d for d in _analyze(analyzer, _report_deployment()) if d.policyName == "containers-have-bounded-resources"
    ]


def test_a_value_unknown_during_preview_becomes_an_advisory_note_not_a_crash(analyzer: Any) -> None:
    _configure(analyzer)
    props = _report_deployment()
    props["spec"]["template"]["spec"]["containers"][0]["image"] = UNKNOWN_STRING_VALUE
    notes = [d for d in _analyze(analyzer, props) if d.policyName == "images-are-pinned"]
    assert len(notes) == 1 and notes[0].enforcementLevel == analyzer_pb2.ADVISORY
    assert "can't be known during preview" in notes[0].message


def test_fails_when_the_stack_has_an_autoscaler_on_beat(analyzer: Any) -> None:
    _configure(analyzer)
    hpa_type = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    hpa = {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "celery-beat"}, "maxReplicas": 3}}
    hpa_urn = f"urn:pulumi:dev::celery-platform::{hpa_type}::beat-hpa"
    request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=DEPLOYMENT,
                properties=_struct(_report_deployment()),
                name="beat",
                urn=f"urn:pulumi:dev::celery-platform::{DEPLOYMENT}::beat",
            ),
            analyzer_pb2.AnalyzerResource(type=hpa_type, properties=_struct(hpa), name="beat-hpa", urn=hpa_urn),
        ]
    )
    diagnostics = list(analyzer.AnalyzeStack(request).diagnostics)
    assert [(d.policyName, d.urn) for d in diagnostics] == [("celery-beat-is-not-autoscaled", hpa_urn)]


def test_the_packs_pins_match_the_program_lock_that_these_tests_run_under() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line.strip() for line in path.read_text().splitlines()]
        pairs = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
        return {name.lower().replace("_", "-"): version for name, version in pairs}

    # These tests run under the dev set: the runtime lock plus requirements-dev.txt.
    program = pins(POLICY_DIR.parent / "requirements.txt") | pins(POLICY_DIR.parent / "requirements-dev.txt")
    pack = pins(POLICY_DIR / "requirements.txt")
    assert {"pulumi", "pulumi-policy", "kubernetes"} <= pack.keys()
    assert {name: version for name, version in pack.items() if program.get(name) != version} == {}


def _ratio_4_deployment(namespace: str) -> dict[str, Any]:
    container = {
        "name": "worker",
        "image": "app:1.0.0",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "400m", "memory": "512Mi"}},
    }
    return {
        "metadata": {"name": "w", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def _ratio_findings(stub: Any, props: dict[str, Any]) -> list[str]:
    return [d.message for d in _analyze(stub, props) if d.policyName == "containers-have-bounded-resources"]


def test_the_ratio_is_the_one_the_namespaces_own_limit_range_allows_not_a_fixed_2(analyzer: Any) -> None:
    _configure(analyzer)
    assert len(_ratio_findings(analyzer, _ratio_4_deployment("team-wide"))) == 2, "no LimitRange seen: 2 applies"
    limit_range = {
        "metadata": {"name": "limits", "namespace": "team-wide"},
        "spec": {"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "4", "memory": "4"}}]},
    }
    _analyze(analyzer, limit_range, "kubernetes:core/v1:LimitRange")
    assert _ratio_findings(analyzer, _ratio_4_deployment("team-wide")) == []
    assert len(_ratio_findings(analyzer, _ratio_4_deployment("elsewhere"))) == 2, "another namespace keeps 2"
    # A ratio set in the pack's config is the stricter word, whatever the namespace allows.
    _configure(analyzer, **{"containers-have-bounded-resources": {"maxCpuLimitRequestRatio": 1.5}})
    assert len(_ratio_findings(analyzer, _ratio_4_deployment("team-wide"))) == 1


def test_fails_when_a_pod_mounts_the_default_service_account_token(analyzer: Any) -> None:
    _configure(analyzer)
    props = _ratio_4_deployment("team-wide")
    props["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    messages = [d.message for d in _analyze(analyzer, props) if d.policyName == "pods-are-restricted"]
    assert any("automountServiceAccountToken is true" in m for m in messages)
    props["spec"]["template"]["spec"]["serviceAccountName"] = "celery-app"
    messages = [d.message for d in _analyze(analyzer, props) if d.policyName == "pods-are-restricted"]
    assert not any("automountServiceAccountToken is true" in m for m in messages), messages
