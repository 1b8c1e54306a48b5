"""Every workload the platform creates, in every broker mode: env that the API server admits on a switch, and
every pod setting that applies to it.

Stacks are rendered (the real program under the render mocks) from the committed dev and prod files, and
from variants of them: each broker mode, and one with every pod setting on. A workload is every
Deployment, StatefulSet, DaemonSet, Job and CronJob in them; one of a kind the tables below do not know
fails the test until someone says which settings apply to it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from celery_platform.render import render_documents

ROOT = Path(__file__).resolve().parents[2]
P = "celery-platform:"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
SECURE = {"secure": "v1:c3RhbmQtaW4="}  # an encrypted value: the render puts a stand-in in its place
CA_SECRET = {"name": "broker-ca", "key": "ca.crt"}
DEV_CONFIG = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]

# Each broker mode as stack keys over the dev file (None: the key is removed).
BROKER_MODES: dict[str, dict[str, Any]] = {
    "ours": {},
    # Three data nodes with claims (dev's quota has none) and three Sentinels.
    "ours with Sentinel": {
        "broker": {"type": "sentinel"},
        "redis": {**DEV_CONFIG[P + "redis"], "persistent": True},
        "quota": {**DEV_CONFIG[P + "quota"], "persistentVolumeClaims": 3, "requestsStorage": "3Gi"},
    },
    "external redis:// URL": {"broker": {"type": "external", "external": {"host": "10.30.0.4"}}, "brokerUrl": SECURE},
    "external rediss:// URL, CA Secret": {
        "broker": {"type": "external", "external": {"host": "10.30.0.4", "tls": True, "caSecret": CA_SECRET}},
        "brokerUrl": SECURE,
    },
    "external rediss:// URL, CA ConfigMap": {
        "broker": {"type": "external", "external": {"host": "10.30.0.4", "tls": True, "caConfigMap": CA_SECRET}},
        "brokerUrl": SECURE,
    },
    "external rediss:// URL, public CA": {
        "broker": {"type": "external", "external": {"host": "10.30.0.4", "tls": True}},
        "brokerUrl": SECURE,
    },
    "external URL Secret, TLS with a CA": {
        "broker": {
            "type": "external",
            "external": {
                "urlSecret": {"name": "elasticache", "key": "url"},
                "host": "master.celery.abc123.use1.cache.amazonaws.com",
                "tls": True,
                "cidr": "10.20.0.0/16",
                "caSecret": CA_SECRET,
            },
        }
    },
}

EVERY_POD_SETTING: dict[str, Any] = {
    "serviceAccount": {
        "create": True,
        "name": "celery-app",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/celery"},
    },
    "imagePullSecrets": ["ghcr-pull"],
    "nodeSelector": {"pool": "celery"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "celery", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}]
            }
        }
    },
    "priorityClassName": "celery-high",
    "labels": {"team": "payments"},
    "annotations": {"example.com/owner": "payments"},
    "env": [{"name": "SMTP_HOST", "value": "smtp.internal"}],
    "envFrom": [{"configMap": "app-config"}],
    "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}],
    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    "pythonPath": ["/app"],
}

# Which pod settings reach which workload (by its app.kubernetes.io/name). Redis takes placement, pull
# secrets and pod metadata, not the app's identity (it calls no cloud API: the namespace's default
# account, no token), nor the app's env, volumes or path. The exporter runs the app image, so it needs
# the pull secret, and takes identity and placement; it runs only our module, so not the app's env,
# volumes or path (monitoring.pod refuses them).
PLACEMENT = (
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "labels",
    "annotations",
)
IDENTITY = ("serviceAccount",)
APP = ("env", "envFrom", "volumes", "volumeMounts", "pythonPath")
APPLIES = {
    "celery-worker": PLACEMENT + IDENTITY + APP,
    "celery-beat": PLACEMENT + IDENTITY + APP,
    "celery-exporter": PLACEMENT + IDENTITY,
    "redis": PLACEMENT,
    "redis-sentinel": PLACEMENT,
}


def render_variant(tmp_path: Path, base: str, changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Render ``Pulumi.<base>.yaml`` with ``changes`` (stack keys without the project prefix) applied."""
    document = yaml.safe_load((ROOT / f"Pulumi.{base}.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            document["config"].pop(P + key, None)
        else:
            document["config"][P + key] = value
    root = tmp_path / f"variant-{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (root / "infra").symlink_to(ROOT / "infra")
    (root / f"Pulumi.{base}.yaml").write_text(yaml.safe_dump(document))
    return render_documents(base, root)


def workloads(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template) of every workload."""
    for doc in documents:
        if doc["kind"] in WORKLOAD_KINDS:
            spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            yield f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]


def containers(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from template["spec"].get("initContainers", [])
    yield from template["spec"]["containers"]


@functools.cache
def _broker_mode_renders() -> dict[str, list[dict[str, Any]]]:
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="broker-modes-"))
    return {mode: render_variant(tmp, "dev", changes) for mode, changes in BROKER_MODES.items()}


@pytest.mark.parametrize("mode", list(BROKER_MODES))
def test_no_env_var_of_any_workload_has_both_a_value_and_a_value_from(mode: str) -> None:
    documents = _broker_mode_renders()[mode]
    found = list(workloads(documents))
    assert len(found) >= 4, found  # two pools, beat and the exporter at least
    for name, template in found:
        for container in containers(template):
            for env in container.get("env", []):
                assert not ("value" in env and "valueFrom" in env), (mode, name, container["name"], env["name"])
                assert "value" in env or "valueFrom" in env, (mode, name, container["name"], env["name"])


def test_an_env_var_keeps_its_kind_of_source_in_every_broker_mode() -> None:
    """Switching brokers must never turn a ``valueFrom`` var into a ``value`` one (or back).

    The API server merges an apply into the live object by env name; a field another manager still owns
    survives the merge, and the var then has both, which it refuses: the "may not be specified when
    `value` is not empty" of a switch to a TLS broker.
    """
    kinds: dict[tuple[str, str, str], dict[str, str]] = {}
    for mode, documents in _broker_mode_renders().items():
        for name, template in workloads(documents):
            for container in containers(template):
                for env in container.get("env", []):
                    kind = "valueFrom" if "valueFrom" in env else "value"
                    kinds.setdefault((name, container["name"], env["name"]), {})[mode] = kind
    flips = {key: by_mode for key, by_mode in kinds.items() if len(set(by_mode.values())) > 1}
    # The one exception, on purpose: a URL in a Secret of the user's, over TLS, gets its certificate checks
    # from the kubelet, which expands $(VAR) only in a value. A switch from our Redis to it flips this var,
    # which docs/operations/external-broker.md says; give the URL as brokerUrl to switch in one `up`.
    user_secret = "external URL Secret, TLS with a CA"
    assert {key[2] for key in flips} <= {"CELERY_BROKER_URL"}, flips
    for key, by_mode in flips.items():
        assert {m for m, kind in by_mode.items() if kind == "value"} == {user_secret}, (key, by_mode)
    assert ("StatefulSet/celery-beat", "beat", "CELERY_BROKER_URL") in kinds


CHECKS = "ssl_cert_reqs=required&ssl_ca_certs=/etc/celery-platform/broker-ca/ca.crt"


@pytest.mark.parametrize("mode", [m for m in BROKER_MODES if "CA" in m and "public" not in m])
def test_every_pod_that_reaches_a_tls_broker_mounts_its_ca_and_requires_certificate_checks(mode: str) -> None:
    documents = _broker_mode_renders()[mode]
    for name, template in workloads(documents):
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        assert "broker-ca" in volumes, name
        main = template["spec"]["containers"][0]
        env = {e["name"]: e for e in main["env"]}
        if "URL Secret" in mode:  # the user's URL: the kubelet appends the checks
            assert env["CELERY_BROKER_URL"]["value"] == f"$(CELERY_PLATFORM_BROKER_URL)?{CHECKS}", name
        else:  # our Secret keeps the URL with its checks (see the URL Secret test below)
            assert "valueFrom" in env["CELERY_BROKER_URL"], name
        assert env["CELERY_BROKER_CA_FILE"]["value"] == "/etc/celery-platform/broker-ca/ca.crt", name
        assert {"name": "broker-ca", "mountPath": "/etc/celery-platform/broker-ca", "readOnly": True} in main[
            "volumeMounts"
        ], name


def _has(template: dict[str, Any], setting: str) -> bool:
    """Whether the pod template carries ``setting`` with EVERY_POD_SETTING's value."""
    spec, meta = template["spec"], template["metadata"]
    want = EVERY_POD_SETTING[setting]
    main = spec["containers"][0]
    match setting:
        case "serviceAccount":
            return spec.get("serviceAccountName") == want["name"]
        case "imagePullSecrets":
            return spec.get("imagePullSecrets") == [{"name": n} for n in want]
        case "nodeSelector" | "affinity" | "priorityClassName" | "tolerations":
            return spec.get(setting) == want
        case "labels" | "annotations":
            return want.items() <= meta.get(setting, {}).items()
        case "env":
            return all(e in main.get("env", []) for e in want)
        case "envFrom":
            return main.get("envFrom") == [{"configMapRef": {"name": "app-config"}}]
        case "volumes":
            return any(v["name"] == "scratch" for v in spec.get("volumes", []))
        case "volumeMounts":
            return any(m["mountPath"] == "/scratch" for m in main.get("volumeMounts", []))
        case "pythonPath":
            return any(e["name"] == "PYTHONPATH" and e["value"].startswith("/app:") for e in main["env"])
    raise AssertionError(f"no check for the pod setting {setting!r}")


EVERYTHING = {
    "pod": EVERY_POD_SETTING,
    # An autoscaled pool beside the prod pool, so that KEDA's objects are in the stack too.
    "pools": [
        *yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"][P + "pools"],
        {
            "name": "bulk",
            "queues": ["reports"],
            "concurrency": 2,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}},
            "autoscaling": {"maxReplicas": 3},
        },
    ],
}


def test_every_workload_of_a_stack_with_every_option_carries_every_pod_setting_that_applies(tmp_path: Path) -> None:
    documents = render_variant(tmp_path, "prod", EVERYTHING)
    seen = set()
    for name, template in workloads(documents):
        app = template["metadata"]["labels"]["app.kubernetes.io/name"]
        assert app in APPLIES, f"{name} ({app}): a workload the table does not know; say which pod settings apply"
        seen.add(app)
        missing = [s for s in APPLIES[app] if not _has(template, s)]
        assert not missing, (name, missing)
        # What does not apply is not there either (Redis has no identity of the app's, the exporter no app env).
        extra = [s for s in EVERY_POD_SETTING if s not in APPLIES[app] and _has(template, s)]
        assert not extra, (name, extra)
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True, name
        for container in containers(template):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, (name, container["name"])
    assert seen == set(APPLIES) - {"redis-sentinel"}, seen


def test_every_workload_of_a_sentinel_stack_with_every_pod_setting_carries_those_that_apply(tmp_path: Path) -> None:
    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    sentinel = {
        "pod": EVERY_POD_SETTING,
        "broker": {"type": "sentinel"},
        "quota": {**prod[P + "quota"], "persistentVolumeClaims": 3},
    }
    found = dict(workloads(render_variant(tmp_path, "prod", sentinel)))
    assert {"StatefulSet/redis-node", "StatefulSet/redis-sentinel"} <= set(found), set(found)
    for name, template in found.items():
        app = template["metadata"]["labels"]["app.kubernetes.io/name"]
        assert app in APPLIES, f"{name} ({app}): a workload the table does not know; say which pod settings apply"
        assert [s for s in APPLIES[app] if not _has(template, s)] == [], name
        assert [s for s in EVERY_POD_SETTING if s not in APPLIES[app] and _has(template, s)] == [], name
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True, name
        for container in containers(template):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, (name, container["name"])
    for name in ("StatefulSet/redis-node", "StatefulSet/redis-sentinel"):
        # The broker spreads by its own setting (one pod per node, across zones), on its own selector.
        spread = found[name]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_workload_of_a_committed_stack_carries_its_pod_settings(stack: str) -> None:
    documents = render_documents(stack, ROOT)
    pod = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"].get(P + "pod", {})
    found = dict(workloads(documents))
    assert {"Deployment/celery-exporter", "StatefulSet/celery-beat", "StatefulSet/redis"} <= set(found), set(found)
    for name, template in found.items():
        spec = template["spec"]
        app = template["metadata"]["labels"]["app.kubernetes.io/name"]
        assert spec.get("imagePullSecrets", []) == [{"name": n} for n in pod.get("imagePullSecrets", [])], name
        assert spec.get("tolerations", []) == pod.get("tolerations", []), name
        if "serviceAccount" in pod and app != "redis":
            assert spec["serviceAccountName"] == pod["serviceAccount"]["name"], name


def test_the_committed_prod_stack_renders_the_exporter_with_its_pull_secret() -> None:
    found = dict(workloads(render_documents("prod", ROOT)))
    assert found["Deployment/celery-exporter"]["spec"]["imagePullSecrets"] == [{"name": "ghcr-pull"}]


def test_the_exporters_own_pod_settings_override_the_platforms(tmp_path: Path) -> None:
    documents = render_variant(
        tmp_path,
        "prod",
        {"monitoring": {"pod": {"serviceAccount": {}, "nodeSelector": {"pool": "monitoring"}, "tolerations": []}}},
    )
    found = dict(workloads(documents))
    exporter, worker = found["Deployment/celery-exporter"]["spec"], found["Deployment/celery-main"]["spec"]
    assert "serviceAccountName" not in exporter and exporter["automountServiceAccountToken"] is False
    assert exporter["nodeSelector"] == {"pool": "monitoring"} and "tolerations" not in exporter
    assert exporter["imagePullSecrets"] == [{"name": "ghcr-pull"}], "what the override leaves unset is inherited"
    assert worker["serviceAccountName"] == "celery-app" and worker["tolerations"], "the workers keep theirs"
