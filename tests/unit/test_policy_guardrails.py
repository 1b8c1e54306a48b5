"""The guardrails policy pack's pure validate functions, fed pulumi-kubernetes inputs (camelCase)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "policy"


def _load_guardrails(name: str) -> ModuleType:
    # policy/ is a Pulumi policy pack directory, not an installed package: load the modules by path.
    spec = importlib.util.spec_from_file_location(name, POLICY_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


g = _load_guardrails("celery_guardrails")
a = _load_guardrails("autoscaler_guardrails")  # imports celery_guardrails, loaded just above

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PROC_PROBE = ["sh", "-c", "grep -q celery /proc/1/cmdline"]  # the report's probe, verbatim


def container(name: str = "worker", **overrides: Any) -> dict[str, Any]:
    """A container that satisfies every policy; overrides replace whole top-level fields."""
    spec: dict[str, Any] = {
        "name": name,
        "image": "registry.example.com/shop/app:1.4.2",
        "command": ["celery"],
        "args": ["-A", "shop", "worker", "--queues=default", "--concurrency=2"],
        "env": [
            {
                "name": "CELERY_BROKER_URL",
                "valueFrom": {"secretKeyRef": {"name": "celery-broker", "key": "url"}},
            },
            {"name": "LOG_LEVEL", "value": "info"},
        ],
        "resources": {
            "requests": {"cpu": "400m", "memory": "512Mi"},
            "limits": {"cpu": "800m", "memory": "1Gi"},
        },
        "livenessProbe": {"exec": {"command": ["python", "-m", "celery_heartbeat", "--max-age=60"]}},
        "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/celery-ready"]}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec.update(overrides)
    return spec


def pod_spec(*containers: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": list(containers) or [container()],
    }
    spec.update(overrides)
    return spec


def workload(kind: str, spec_of_pod: dict[str, Any] | None = None, **spec: Any) -> tuple[str, dict[str, Any]]:
    """(type token, props) for `kind` wrapping the pod spec where that kind keeps its pod template."""
    pod = spec_of_pod if spec_of_pod is not None else pod_spec()
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod}
    tokens = {
        "Deployment": "apps/v1",
        "StatefulSet": "apps/v1",
        "DaemonSet": "apps/v1",
        "ReplicaSet": "apps/v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
        "Pod": "core/v1",
    }
    if kind == "Pod":
        body: dict[str, Any] = pod
    elif kind == "CronJob":
        body = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}, **spec}
    else:
        body = {"template": template, **spec}
    props = {
        "apiVersion": tokens[kind].removeprefix("core/"),
        "kind": kind,
        "metadata": {"name": kind.lower(), "namespace": "shop"},
        "spec": body,
    }
    return f"kubernetes:{tokens[kind]}:{kind}", props


def all_violations(resource_type: str, props: dict[str, Any], **config: Any) -> list[str]:
    return [
        *g.validate_resources(resource_type, props, **config),
        *g.validate_image_tags(resource_type, props),
        *g.validate_probes(resource_type, props),
        *g.validate_beat_singleton(resource_type, props),
        *g.validate_secret_env(resource_type, props),
        *g.validate_security_context(resource_type, props),
        *a.validate_scaler_credentials(resource_type, props),
    ]


def beat_statefulset(name: str = "beat") -> tuple[str, dict[str, Any]]:
    beat = container("beat", args=["-A", "shop", "beat", "-s", "/tmp/celerybeat-schedule"])
    resource_type, props = workload("StatefulSet", pod_spec(beat), replicas=1)
    props["metadata"]["name"] = name
    return resource_type, props


ALL_KINDS = ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"]

# --- compliant baseline ---------------------------------------------------------------------------


def test_a_compliant_celery_worker_deployment_passes_every_policy() -> None:
    assert all_violations(*workload("Deployment", replicas=3)) == []


def test_a_compliant_beat_statefulset_of_one_passes_every_policy() -> None:
    assert all_violations(*beat_statefulset()) == []


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_compliant_pod_template_passes_in_every_workload_kind(kind: str) -> None:
    assert all_violations(*workload(kind)) == []


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_workload_kind_has_its_pod_template_checked(kind: str) -> None:
    bad = container(image="app:latest", securityContext={}, resources={})
    messages = all_violations(*workload(kind, pod_spec(bad)))
    assert any(":latest" in m for m in messages)
    assert any("resources.limits.cpu is missing" in m for m in messages)
    assert any("allowPrivilegeEscalation" in m for m in messages)


@pytest.mark.parametrize(
    "resource_type",
    [
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:apps/v1:DeploymentPatch",
        "random:index/randomPassword:RandomPassword",
    ],
)
def test_resources_without_a_pod_template_are_not_checked(resource_type: str) -> None:
    _, props = workload("Deployment", pod_spec(container(image="app:latest")))
    assert all_violations(resource_type, props) == []


def test_props_behind_pulumi_policy_unknown_proxies_are_read_without_touching_unknown_values() -> None:
    resource_type, props = workload("Deployment")
    env = props["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "REDIS_HOST", "value": UNKNOWN_STRING_VALUE})  # unknown during preview
    assert all_violations(resource_type, unknown_checking_proxy(props)) == []


def test_fails_behind_unknown_proxies_when_a_secret_named_env_var_has_an_unknown_literal_value() -> None:
    resource_type, props = workload("Deployment")
    env = props["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "BROKER_URL", "value": UNKNOWN_STRING_VALUE})
    messages = g.validate_secret_env(resource_type, unknown_checking_proxy(props))
    assert len(messages) == 1 and "env[2] BROKER_URL is a literal value" in messages[0]


# --- resources ------------------------------------------------------------------------------------

REPORT_RESOURCES = {
    "requests": {"cpu": "400m", "memory": "512Mi"},
    "limits": {"cpu": "800m", "memory": "1Gi"},
}


def test_fails_when_the_reports_400m_800m_cpu_is_checked_against_a_max_ratio_of_1_5() -> None:
    resource_type, props = workload("Deployment", pod_spec(container(resources=REPORT_RESOURCES)))
    messages = g.validate_resources(resource_type, props, max_cpu_ratio=1.5)
    assert messages == [
        'spec.template.spec.containers[0] "worker": resources.limits.cpu 800m / resources.requests.cpu 400m '
        "is a limit/request ratio of 2; at most 1.5 is allowed "
        "(a LimitRange maxLimitRequestRatio rejects the pod)"
    ]


def test_the_reports_400m_800m_cpu_passes_under_the_default_max_ratio_of_2() -> None:
    resource_type, props = workload("Deployment", pod_spec(container(resources=REPORT_RESOURCES)))
    assert g.validate_resources(resource_type, props) == []
    assert g.validate_resources(resource_type, props, max_cpu_ratio=2) == []


def test_fails_when_memory_limit_exceeds_twice_the_request() -> None:
    res = {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1.5Gi"}}
    messages = g.validate_resources(*workload("Deployment", pod_spec(container(resources=res))))
    assert len(messages) == 1 and "resources.limits.memory 1.5Gi" in messages[0] and "ratio of 3" in messages[0]


def test_fails_when_a_container_has_no_cpu_limit() -> None:
    res = {"requests": {"cpu": "400m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    messages = g.validate_resources(*workload("Deployment", pod_spec(container(resources=res))))
    assert messages == [
        'spec.template.spec.containers[0] "worker": resources.limits.cpu is missing; every '
        "container and init container must set cpu and memory requests and limits"
    ]


def test_fails_when_an_init_container_that_waits_for_the_broker_has_no_resources() -> None:
    wait = container("wait-for-broker", resources=None)
    messages = g.validate_resources(*workload("Deployment", pod_spec(initContainers=[wait])))
    assert len(messages) == 4
    assert all(m.startswith('spec.template.spec.initContainers[0] "wait-for-broker"') for m in messages)


def test_fails_when_a_quantity_is_not_a_kubernetes_quantity() -> None:
    res = {"requests": {"cpu": "lots", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    messages = g.validate_resources(*workload("Deployment", pod_spec(container(resources=res))))
    assert len(messages) == 1 and "'lots' is not a Kubernetes quantity" in messages[0]


def test_fails_when_the_limit_is_below_the_request() -> None:
    res = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}
    messages = g.validate_resources(*workload("Deployment", pod_spec(container(resources=res))))
    assert len(messages) == 1 and "the limit must not be below the request" in messages[0]


def test_fails_when_the_configured_max_ratio_is_below_1() -> None:
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        g.validate_resources(*workload("Deployment"), max_memory_ratio=0.5)


@given(
    request_m=st.integers(1, 16_000),
    extra_m=st.integers(0, 48_000),
    max_ratio=st.sampled_from([1, 1.25, 1.5, 2, 3, 4]),
)
def test_the_cpu_ratio_rule_agrees_with_exact_fraction_arithmetic(
    request_m: int, extra_m: int, max_ratio: float
) -> None:
    limit_m = request_m + extra_m
    res = {
        "requests": {"cpu": f"{request_m}m", "memory": "1Gi"},
        "limits": {"cpu": f"{limit_m}m", "memory": "1Gi"},
    }
    messages = g.validate_resources(
        *workload("Deployment", pod_spec(container(resources=res))), max_cpu_ratio=max_ratio
    )
    assert bool(messages) == (Fraction(limit_m, request_m) > Fraction(str(max_ratio)))


# --- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image", ["app:latest", "app", "registry.example.com:5000/shop/app", "docker.io/library/redis:LATEST"]
)
def test_fails_when_the_image_is_latest_or_untagged(image: str) -> None:
    messages = g.validate_image_tags(*workload("Deployment", pod_spec(container(image=image))))
    assert len(messages) == 1 and repr(image) in messages[0]
    assert "pin an explicit version tag" in messages[0]


def test_fails_when_the_image_is_missing() -> None:
    messages = g.validate_image_tags(*workload("Deployment", pod_spec(container(image=""))))
    assert len(messages) == 1 and "image is missing" in messages[0]


@pytest.mark.parametrize(
    "image",
    [
        "redis:7.4.2",
        "registry.example.com:5000/shop/app:2025.11.1",
        "app@sha256:" + "a" * 64,
        "app:latest@sha256:" + "0f" * 32,
    ],
)
def test_a_version_tag_or_a_digest_passes(image: str) -> None:
    assert g.validate_image_tags(*workload("Deployment", pod_spec(container(image=image)))) == []


# --- probes ---------------------------------------------------------------------------------------


def test_fails_when_every_probe_greps_proc_1_cmdline_as_in_the_report() -> None:
    probe = {"exec": {"command": PROC_PROBE}, "periodSeconds": 30}
    bad = container(livenessProbe=probe, readinessProbe=probe, startupProbe=probe)
    messages = g.validate_probes(*workload("Deployment", pod_spec(bad)))
    assert [m.split(".exec.command")[0].rsplit(" ", 1)[-1] for m in messages] == [
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
    ]
    assert all("reads /proc, which only proves a process exists" in m for m in messages)


@pytest.mark.parametrize(
    "command",
    [
        ["cat", "/proc/1/cmdline"],
        ["sh", "-c", "pgrep -f 'celery worker'"],
        ["pidof", "celery"],
        ["/bin/sh", "-c", "ps aux | grep -q celery"],
    ],
)
def test_fails_when_a_probe_only_checks_that_a_process_exists(command: list[str]) -> None:
    bad = container(livenessProbe={"exec": {"command": command}})
    messages = g.validate_probes(*workload("Deployment", pod_spec(bad)))
    assert len(messages) == 1 and "livenessProbe.exec.command" in messages[0]


@pytest.mark.parametrize(
    "command",
    [
        ["celery", "-A", "shop", "inspect", "ping", "-d", "celery@$(HOSTNAME)"],
        ["sh", "-c", "celery -A shop inspect ping --timeout 10"],
        ["python", "-m", "celery", "-A", "shop", "status"],
    ],
)
def test_fails_when_a_probe_runs_celery_inspect_ping(command: list[str]) -> None:
    messages = g.validate_probes(
        *workload("Deployment", pod_spec(container(readinessProbe={"exec": {"command": command}})))
    )
    assert len(messages) == 1 and "broadcasts a celery ping" in messages[0]


def test_http_and_tcp_probes_pass() -> None:
    ok = container(
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8080}},
        readinessProbe={"tcpSocket": {"port": 6379}},
    )
    assert g.validate_probes(*workload("Deployment", pod_spec(ok))) == []


# --- celery beat ----------------------------------------------------------------------------------


def beat_deployment(**spec: Any) -> tuple[str, dict[str, Any]]:
    beat = container("beat", args=["-A", "shop", "beat", "-s", "/tmp/celerybeat-schedule"])
    return workload("Deployment", pod_spec(beat), **spec)


def test_fails_when_a_beat_deployment_has_2_replicas() -> None:
    messages = g.validate_beat_singleton(*beat_deployment(replicas=2, strategy={"type": "Recreate"}))
    assert messages == ["Deployment runs celery beat, which must run at most once: spec.replicas is 2; allowed: 0 or 1"]


def test_fails_when_a_beat_deployment_keeps_the_default_rolling_update() -> None:
    messages = g.validate_beat_singleton(*beat_deployment(replicas=1))
    assert len(messages) == 1 and "RollingUpdate (the default)" in messages[0] and "Recreate" in messages[0]


def test_a_beat_deployment_of_one_with_recreate_passes() -> None:
    assert g.validate_beat_singleton(*beat_deployment(replicas=1.0, strategy={"type": "Recreate"})) == []


def test_fails_when_a_beat_statefulset_has_2_replicas() -> None:
    resource_type, props = beat_statefulset()
    props["spec"]["replicas"] = 2.0  # numbers arrive from the engine as floats
    assert len(g.validate_beat_singleton(resource_type, props)) == 1


def test_fails_when_beat_runs_as_a_daemonset() -> None:
    beat = container("beat", args=["-A", "shop", "beat"])
    messages = g.validate_beat_singleton(*workload("DaemonSet", pod_spec(beat)))
    assert len(messages) == 1 and "one beat per node" in messages[0]


def test_fails_when_beat_is_started_through_a_shell_string() -> None:
    beat = container("beat", command=["sh", "-c"], args=["exec celery -A shop beat -l info"])
    assert len(g.validate_beat_singleton(*workload("Deployment", pod_spec(beat), replicas=2))) == 2


def test_fails_when_3_worker_replicas_each_embed_beat_with_dash_b() -> None:
    worker = container(args=["-A", "shop", "worker", "-B", "--concurrency=2"])
    messages = g.validate_beat_singleton(*workload("Deployment", pod_spec(worker), replicas=3))
    assert any("spec.replicas is 3" in m for m in messages)


def test_a_worker_deployment_with_3_replicas_is_not_treated_as_beat() -> None:
    assert g.validate_beat_singleton(*workload("Deployment", replicas=3)) == []


def test_fails_when_a_horizontal_pod_autoscaler_targets_the_beat_statefulset() -> None:
    hpa = {
        "metadata": {"name": "beat", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "beat"},
            "minReplicas": 1,
            "maxReplicas": 3,
        },
    }
    found = a.autoscaled_beat_violations([beat_statefulset(), workload("Deployment"), (HPA, hpa)])
    assert found == [
        (
            2,
            "HorizontalPodAutoscaler spec.scaleTargetRef targets StatefulSet 'beat', which runs "
            "celery beat; beat must never be autoscaled: remove the autoscaler",
        )
    ]


def test_fails_when_a_keda_scaled_object_targets_a_beat_deployment_by_its_default_kind() -> None:
    resource_type, props = beat_deployment(replicas=1, strategy={"type": "Recreate"})
    scaled = {"metadata": {"name": "beat"}, "spec": {"scaleTargetRef": {"name": "deployment"}}}
    assert [i for i, _ in a.autoscaled_beat_violations([(resource_type, props), (SCALED_OBJECT, scaled)])] == [1]


def test_autoscalers_on_workers_or_on_other_namespaces_pass() -> None:
    worker_hpa = {
        "metadata": {"namespace": "shop"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "deployment"}},
    }
    elsewhere = {
        "metadata": {"namespace": "other"},
        "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "beat"}},
    }
    resources = [beat_statefulset(), workload("Deployment"), (HPA, worker_hpa), (HPA, elsewhere)]
    assert a.autoscaled_beat_violations(resources) == []


def keda_scaled_object(target: str = "deployment", **metadata: Any) -> dict[str, Any]:
    trigger = {
        "type": "redis",
        "name": "q0p0",
        "metadata": {"address": "redis.shop.svc:6379", "listName": "default", **metadata},
    }
    return {
        "metadata": {"name": "celery-main", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"name": target}, "triggers": [{**trigger, "authenticationRef": {"name": "auth"}}]},
    }


def test_fails_when_an_autoscaled_deployment_sets_replicas() -> None:
    resources = [workload("Deployment", replicas=3), (SCALED_OBJECT, keda_scaled_object())]
    # Reported on whichever comes second: only then are both seen (resource policies see one at a time).
    assert [i for i, _ in a.autoscaled_replicas_violations(resources[::-1])] == [1]
    assert a.autoscaled_replicas_violations(resources) == [
        (
            1,
            "Deployment 'deployment' sets spec.replicas, but ScaledObject 'celery-main' scales it: leave "
            "spec.replicas out so that the autoscaler owns it (a value is a field-manager conflict on every update)",
        )
    ]


def test_an_autoscaled_deployment_without_replicas_and_a_fixed_one_with_replicas_pass() -> None:
    scaled = workload("Deployment")
    fixed = workload("Deployment", replicas=3)
    fixed[1]["metadata"]["name"] = "fixed"
    assert a.autoscaled_replicas_violations([scaled, fixed, (SCALED_OBJECT, keda_scaled_object())]) == []


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ({"password": "hunter2"}, "password"),
        ({"sentinelPassword": "hunter2"}, "sentinelPassword"),
        ({"address": "redis://:hunter2@redis.shop.svc:6379"}, "address"),
    ],
)
def test_fails_when_a_keda_trigger_holds_a_literal_password(metadata: dict[str, Any], key: str) -> None:
    messages = a.validate_scaler_credentials(SCALED_OBJECT, keda_scaled_object(**metadata))
    assert len(messages) == 1 and messages[0].startswith(f"spec.triggers[0].metadata.{key} ")
    assert "TriggerAuthentication" in messages[0]


def test_a_keda_trigger_reading_the_password_from_env_or_a_trigger_authentication_passes() -> None:
    assert a.validate_scaler_credentials(SCALED_OBJECT, keda_scaled_object(passwordFromEnv="REDIS_PASSWORD")) == []
    assert a.validate_scaler_credentials(SCALED_OBJECT, keda_scaled_object(enableTLS="true")) == []


def test_the_rendered_autoscaled_stack_passes_both_autoscaling_policies(tmp_path: Path) -> None:
    from celery_platform.render import render_documents

    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    pools = document["config"]["celery-platform:pools"]
    for pool in pools:
        del pool["replicas"]
        pool["autoscaling"] = {"minReplicas": 0, "maxReplicas": 3}
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    docs = render_documents("prod", tmp_path)
    resources = [
        (f"kubernetes:{d['apiVersion'] if '/' in d['apiVersion'] else 'core/' + d['apiVersion']}:{d['kind']}", d)
        for d in docs
    ]
    assert sum(1 for t, _ in resources if t == SCALED_OBJECT) == len(pools)
    assert a.autoscaled_replicas_violations(resources) == []
    assert [m for t, d in resources for m in a.validate_scaler_credentials(t, d)] == []
    # The same stack with one replicas put back is refused.
    [deployment] = [
        d for t, d in resources if d["kind"] == "Deployment" and d["metadata"]["name"] == f"celery-{pools[0]['name']}"
    ]
    deployment["spec"]["replicas"] = 2
    assert len(a.autoscaled_replicas_violations(resources)) == 1


def test_every_workload_of_the_rendered_sentinel_stack_passes_every_policy(tmp_path: Path) -> None:
    from celery_platform.render import render_documents

    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["celery-platform:broker"] = {"type": "sentinel"}
    document["config"]["celery-platform:quota"]["persistentVolumeClaims"] = 3
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    workloads = [d for d in render_documents("prod", tmp_path) if d["kind"] in ("Deployment", "StatefulSet")]
    names = {d["metadata"]["name"] for d in workloads}
    assert {"redis-node", "redis-sentinel", "celery-main", "celery-beat", "celery-exporter"} <= names, names
    for doc in workloads:
        assert all_violations(f"kubernetes:apps/v1:{doc['kind']}", doc) == [], doc["metadata"]["name"]


# --- secrets in env -------------------------------------------------------------------------------


def env_container(*env: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return workload("Deployment", pod_spec(container(env=list(env))))


def test_fails_when_secret_key_is_a_literal_value() -> None:
    messages = g.validate_secret_env(*env_container({"name": "SECRET_KEY", "value": "x"}))
    assert messages == [
        'spec.template.spec.containers[0] "worker": env[0] SECRET_KEY is a literal value; a '
        "secret must come from valueFrom.secretKeyRef (a Kubernetes Secret), never from value"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "CELERY_BROKER_URL",
        "DATABASE_URL",
        "REDIS_PASSWORD",
        "SENTRY_DSN",
        "FIELD_ENCRYPTION_KEY",
        "API_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "CELERY_RESULT_BACKEND",
        "DJANGO_SECRETKEY",
    ],
)
def test_fails_when_a_secret_looking_env_var_is_a_literal(name: str) -> None:
    assert len(g.validate_secret_env(*env_container({"name": name, "value": "redis://:hunter2@redis:6379/0"}))) == 1


def test_fails_when_a_secret_comes_from_a_config_map() -> None:
    entry = {"name": "SECRET_KEY", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "secret"}}}
    messages = g.validate_secret_env(*env_container(entry))
    assert len(messages) == 1 and "allowed: valueFrom.secretKeyRef" in messages[0]


def test_a_url_composed_only_from_earlier_secret_references_passes() -> None:
    password = {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}}
    url = {
        "name": "CELERY_BROKER_URL",
        "value": "redis://:$(REDIS_PASSWORD)@redis.shop.svc.cluster.local:6379/0",
    }
    assert g.validate_secret_env(*env_container(password, url)) == []
    assert len(g.validate_secret_env(*env_container(url, password))) == 1  # referenced before it is defined


@pytest.mark.parametrize(
    "name",
    ["LOG_LEVEL", "REDIS_HOST", "CELERY_BROKER_HOST", "PWD", "KEYSPACE_HITS_ALERT", "DJANGO_SETTINGS_MODULE"],
)
def test_env_vars_that_do_not_look_secret_may_be_literals(name: str) -> None:
    assert g.validate_secret_env(*env_container({"name": name, "value": "x"})) == []


def test_an_allowlisted_literal_name_passes() -> None:
    resource_type, props = env_container({"name": "CACHE_KEY_PREFIX", "value": "shop"})
    assert len(g.validate_secret_env(resource_type, props)) == 1
    assert g.validate_secret_env(resource_type, props, ["CACHE_KEY_PREFIX"]) == []


@given(
    prefix=st.from_regex(r"[A-Z]{1,8}_", fullmatch=True),
    word=st.sampled_from(["SECRET", "PASSWORD", "TOKEN", "KEY", "DSN", "DATABASE_URL", "BROKER_URL"]),
)
def test_any_name_ending_in_a_secret_word_looks_secret(prefix: str, word: str) -> None:
    assert g.looks_secret(prefix + word)


# --- security context -----------------------------------------------------------------------------


def test_fails_when_run_as_non_root_is_set_nowhere() -> None:
    pod = pod_spec(securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
    messages = g.validate_security_context(*workload("Deployment", pod))
    assert len(messages) == 1
    assert "runAsNonRoot is unset on the pod (the container sets none); allowed: true" in messages[0]


def test_fails_when_a_container_overrides_the_pods_run_as_non_root_and_says_so() -> None:
    pod = pod_spec(securityContext={"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True})
    pod["containers"][0]["securityContext"]["runAsNonRoot"] = False
    messages = g.validate_security_context(*workload("Deployment", pod))
    assert len(messages) == 1
    assert "runAsNonRoot is false on the container; allowed: true" in messages[0]


def test_fails_when_a_container_runs_as_uid_0() -> None:
    sc = {**container()["securityContext"], "runAsUser": 0}
    messages = g.validate_security_context(*workload("Deployment", pod_spec(container(securityContext=sc))))
    assert len(messages) == 1 and "runAsUser is 0" in messages[0]


def test_fails_when_a_container_is_privileged_and_may_escalate() -> None:
    sc = {"privileged": True, "allowPrivilegeEscalation": True, "capabilities": {"drop": ["ALL"]}}
    messages = g.validate_security_context(*workload("Deployment", pod_spec(container(securityContext=sc))))
    assert {m.split(": ", 1)[1].split(" is ")[0] for m in messages} == {
        "securityContext.privileged",
        "securityContext.allowPrivilegeEscalation",
    }


def test_fails_when_capabilities_are_not_all_dropped_or_extra_ones_are_added() -> None:
    sc = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["NET_RAW"], "add": ["SYS_ADMIN"]}}
    messages = g.validate_security_context(*workload("Deployment", pod_spec(container(securityContext=sc))))
    assert len(messages) == 2 and "must include 'ALL'" in messages[0] and "'SYS_ADMIN'" in messages[1]


def test_fails_when_a_container_overrides_seccomp_to_unconfined() -> None:
    sc = {**container()["securityContext"], "seccompProfile": {"type": "Unconfined"}}
    messages = g.validate_security_context(*workload("Deployment", pod_spec(container(securityContext=sc))))
    assert len(messages) == 1 and "'Unconfined'" in messages[0] and "RuntimeDefault" in messages[0]


@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_fails_when_the_pod_shares_a_host_namespace(field: str) -> None:
    messages = g.validate_security_context(*workload("Deployment", pod_spec(**{field: True})))
    assert messages == [f"spec.template.spec.{field} is true; allowed: false or unset"]


def test_container_level_settings_satisfy_the_rule_without_a_pod_security_context() -> None:
    sc = {
        **container()["securityContext"],
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = pod_spec(container(securityContext=sc))
    del pod["securityContext"]
    assert g.validate_security_context(*workload("Deployment", copy.deepcopy(pod))) == []
