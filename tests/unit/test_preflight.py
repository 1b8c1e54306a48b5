"""Preflight: what a platform needs from its cluster, and what it says when it cannot look.

The lookups themselves against a real API server, and the refusal under the real engine, are in
tests/engine/test_preflight.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from celery_platform.config.preflight import needed_crds, references
from celery_platform.config.stack import parse_stack_config
from celery_platform.resources.preflight import crd_refusal, missing_warning

STACK = {
    "image": "registry.example.com/app:1.0.0",
    "databaseUrl": "postgresql://app:pw@10.20.1.5:5432/app",
    "pools": yaml.safe_dump([{"name": "main", "queues": ["default"]}, {"name": "io", "queues": ["email"]}]),
}


def args(**keys: Any) -> Any:
    return parse_stack_config({**STACK, **{k: yaml.safe_dump(v) for k, v in keys.items()}})


def test_autoscaling_needs_kedas_two_crds_and_monitoring_the_operators_two() -> None:
    scaled = args(
        pools=[
            {"name": "main", "queues": ["default"]},
            {"name": "io", "queues": ["email"], "autoscaling": {"maxReplicas": 4}},
        ],
        monitoring={"enabled": False},
    )
    assert [(c.name, c.needed_by) for c in needed_crds(scaled)] == [
        ("triggerauthentications.keda.sh", "pools[1].autoscaling"),
        ("scaledobjects.keda.sh", "pools[1].autoscaling"),
    ]
    assert [c.name for c in needed_crds(args())] == [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ]
    assert needed_crds(args(monitoring={"prometheusOperator": False})) == []
    assert needed_crds(args(monitoring={"enabled": False})) == []


def test_every_secret_and_config_map_that_a_setting_names_is_found_with_its_setting() -> None:
    platform = args(
        pod={
            "imagePullSecrets": ["regcred"],
            "env": [
                {"name": "SMTP_USER", "configMapKeyRef": {"name": "smtp", "key": "user"}},
                {"name": "SMTP_PASSWORD", "secretKeyRef": {"name": "smtp-creds", "key": "password"}},
                {"name": "MAYBE_TOKEN", "secretKeyRef": {"name": "maybe", "key": "t", "optional": True}},
            ],
            "envFrom": [{"configMap": "app-settings"}, {"secret": "optional-env", "optional": True}],
            "volumes": [{"name": "certs", "secret": "app-certs"}, {"name": "scratch", "emptyDir": {}}],
            "volumeMounts": [{"name": "certs", "mountPath": "/certs"}, {"name": "scratch", "mountPath": "/scratch"}],
        },
        pools=[
            {"name": "main", "queues": ["default"]},
            {"name": "io", "queues": ["email"], "pod": {"envFrom": [{"secret": "io-env"}]}},
        ],
        beat={"pod": {"imagePullSecrets": ["beat-regcred"]}},
        monitoring={"enabled": False},  # not with a TLS broker yet (issue 21's TLS part)
        broker={
            "type": "external",
            "external": {
                "host": "redis.example.com",
                "cidr": "10.30.0.0/16",
                "tls": True,
                "urlSecret": {"name": "broker-url", "key": "url"},
                "caSecret": {"name": "broker-ca", "key": "ca.crt"},
            },
        },
    )
    found = {(r.kind, r.name, r.field) for r in references(platform)}
    assert found == {
        ("Secret", "regcred", "pod.imagePullSecrets[0]"),
        ("ConfigMap", "smtp", "pod.env[0].configMapKeyRef"),
        ("Secret", "smtp-creds", "pod.env[1].secretKeyRef"),
        ("ConfigMap", "app-settings", "pod.envFrom[0].configMap"),
        ("Secret", "app-certs", "pod.volumes[0].secret"),
        ("Secret", "io-env", "pools[1].pod.envFrom[0].secret"),
        ("Secret", "beat-regcred", "beat.pod.imagePullSecrets[0]"),
        ("Secret", "broker-url", "broker.external.urlSecret"),
        ("Secret", "broker-ca", "broker.external.caSecret"),
    }


def test_a_platform_with_no_references_names_none() -> None:
    assert references(args()) == []


def test_the_refusal_names_each_crd_what_needs_it_and_how_to_install_it_in_one_message() -> None:
    platform = args(pools=[{"name": "main", "queues": ["default"], "autoscaling": {"maxReplicas": 4}}])
    message = crd_refusal("CeleryPlatform 'celery'", needed_crds(platform), "kubeconfig, context dev")
    assert message.startswith(
        "CeleryPlatform 'celery': the cluster (kubeconfig, context dev) has no CustomResourceDefinition for 4 kind(s)"
    )
    assert "  - triggerauthentications.keda.sh, scaledobjects.keda.sh (keda.sh/v1alpha1), needed by " in message
    assert "pools[0].autoscaling: install KEDA (https://keda.sh/docs/latest/deploy/" in message
    assert "needed by monitoring.prometheusOperator: install the Prometheus Operator" in message
    assert message.count("\n  - ") == 2 and "preflight: false" in message


def test_the_warning_names_each_missing_object_and_its_setting() -> None:
    platform = args(pod={"imagePullSecrets": ["regcred"], "envFrom": [{"configMap": "app-settings"}]})
    warning = missing_warning("celery-dev", references(platform))
    assert warning == (
        "preflight: namespace 'celery-dev' has no Secret 'regcred' (pod.imagePullSecrets[0]); ConfigMap "
        "'app-settings' (pod.envFrom[0].configMap): the pods that use them will not start until they exist "
        "(create them before `up`, or mark the reference optional)"
    )


def _run(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PREFLIGHT = """
    import yaml
    from celery_platform.config.stack import parse_stack_config
    from celery_platform.resources.preflight import preflight
    args = parse_stack_config({STACK!r})
    for _ in range(2):
        print(preflight("CeleryPlatform 'celery'", args, None))
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_cluster_skips_the_checks_and_says_so_once(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    done = _run(PREFLIGHT.format(STACK=STACK), {"KUBECONFIG": str(kubeconfig)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n[]\n"
    said = [line for line in done.stderr.splitlines() if "preflight" in line]
    assert said == [
        "warning: preflight: the CRDs and the Secrets and ConfigMaps that the stack names were not looked up: "
        f"cannot reach the cluster ({kubeconfig}, context (current)): MaxRetryError"
    ], done.stderr


def test_no_kubeconfig_at_all_skips_the_checks_and_says_why(tmp_path: Path) -> None:
    done = _run(PREFLIGHT.format(STACK=STACK), {}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not looked up: no kubeconfig (kubernetes:kubeconfig, $KUBECONFIG, ~/.kube/config)" in done.stderr
    assert done.stderr.count("preflight") == 1


@pytest.mark.parametrize("kubeconfig", ["not: [a kubeconfig", "/nowhere/kubeconfig"])
def test_an_unreadable_stack_kubeconfig_skips_the_checks_without_a_traceback(kubeconfig: str, tmp_path: Path) -> None:
    done = _run(
        PREFLIGHT.format(STACK=STACK),
        {"PULUMI_CONFIG": f'{{"kubernetes:kubeconfig": {kubeconfig!r}}}'.replace("'", '"')},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "not looked up: cannot read the kubeconfig" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_explicit_provider_skips_the_checks_and_says_that_its_cluster_is_not_read(tmp_path: Path) -> None:
    code = PREFLIGHT.replace(
        "preflight(\"CeleryPlatform 'celery'\", args, None)",
        "preflight(\"CeleryPlatform 'celery'\", args, pulumi.ResourceOptions(providers=dict(kubernetes=object())))",
    ).replace("import yaml", "import pulumi")
    kubeconfig = tmp_path / "never-read"
    done = _run(code.format(STACK=STACK), {"KUBECONFIG": str(kubeconfig)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not looked up: an explicit provider is given, whose cluster the program cannot read" in done.stderr
    assert done.stderr.count("preflight") == 1


def test_the_preflight_key_is_on_by_default_and_false_turns_it_off(tmp_path: Path) -> None:
    # That the platform then never looks is proven in the engine tier (the docs' block previews clean).
    code = """
        from celery_platform.config.stack import parse_stack_config
        args = parse_stack_config({STACK!r})
        assert args.preflight is True
        off = parse_stack_config({{**{STACK!r}, "preflight": "false"}})
        assert off.preflight is False
        print("ok")
    """
    done = _run(code.format(STACK=STACK), {}, tmp_path)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
