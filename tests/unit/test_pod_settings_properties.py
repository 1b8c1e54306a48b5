"""Properties over the new fields: any pod settings parse to a valid config or one clear error, and a valid
config never loses what the platform relies on (its env, its mounts, its labels, a verified TLS broker)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_platform.builders.celery_pods import PLAN_REFS, worker_pod_spec
from celery_platform.config.env import PLATFORM_ENV, looks_secret
from celery_platform.config.podsettings import OWN_LABELS
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config

# policy/ is a policy pack directory, not a package: load the module by path, as test_policy_guardrails does.
_SPEC = importlib.util.spec_from_file_location(
    "celery_guardrails_for_pod_settings", Path(__file__).resolve().parents[2] / "policy" / "celery_guardrails.py"
)
assert _SPEC is not None and _SPEC.loader is not None
celery_guardrails = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = celery_guardrails
_SPEC.loader.exec_module(celery_guardrails)

BASE = {
    "image": "registry.example.com/app:1.0.0",
    "databaseUrl": "postgresql://app:pw@db:5432/app",
    "pools": yaml.safe_dump([{"name": "main", "queues": ["default"]}]),
    "egress": yaml.safe_dump([{"cidr": "10.0.0.0/8", "ports": [5432]}]),
}
names = st.sampled_from(["SMTP_HOST", "SMTP_PASSWORD", "CELERY_BROKER_URL", "PYTHONPATH", "A", "bad name", "CACHE_URL"])
paths = st.sampled_from(["/tmp", "/tmp/x", "/etc/smtp", "/data", "relative", "/etc/celery-platform/hooks", "/", "/app"])
label_keys = st.sampled_from(["team", *OWN_LABELS, "bad key", "example.com/tier"])
env = st.fixed_dictionaries(
    {"name": names},
    optional={
        "value": st.sampled_from(["x", ""]),
        "secretKeyRef": st.fixed_dictionaries({"name": st.sampled_from(["smtp", "Bad"]), "key": st.just("k")}),
        "configMapKeyRef": st.fixed_dictionaries({"name": st.just("cfg"), "key": st.just("k")}),
    },
)
pod = st.fixed_dictionaries(
    {},
    optional={
        "serviceAccount": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["app", "", "Bad_Name"]),
                "create": st.booleans(),
                "annotations": st.dictionaries(st.sampled_from(["eks.amazonaws.com/role-arn", "-x"]), st.just("v")),
                "automountToken": st.booleans(),
            },
        ),
        "imagePullSecrets": st.lists(st.sampled_from(["pull", "Bad", "ghcr"]), max_size=2),
        "nodeSelector": st.dictionaries(label_keys, st.sampled_from(["a", "b c"]), max_size=2),
        "tolerations": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "key": st.sampled_from(["dedicated", ""]),
                    "operator": st.sampled_from(["Equal", "Exists", "In"]),
                    "value": st.sampled_from(["celery", ""]),
                    "effect": st.sampled_from(["NoSchedule", "NoExecute", "Never", ""]),
                },
            ),
            max_size=2,
        ),
        "labels": st.dictionaries(label_keys, st.just("x"), max_size=2),
        "env": st.lists(env, max_size=3),
        "volumes": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["data", "tmp", "hooks", "ca"])},
                optional={
                    "secret": st.just("s"),
                    "emptyDir": st.fixed_dictionaries(
                        {},
                        optional={
                            "medium": st.sampled_from(["", "Memory"]),
                            "sizeLimit": st.sampled_from(["64Mi", "2Gi"]),
                        },
                    ),
                },
            ),
            max_size=2,
        ),
        "volumeMounts": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["data", "ca", "nope"]), "mountPath": paths}), max_size=2
        ),
        "pythonPath": st.lists(paths, max_size=2),
    },
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod=pod)
def test_any_pod_settings_give_a_valid_config_or_one_error_and_never_lose_what_the_platform_needs(
    pod: dict[str, Any],
) -> None:
    try:
        config = parse_stack_config({**BASE, "pod": yaml.safe_dump(pod)})
    except ValidationError as err:
        assert err.problems and all(p.field and p.expected for p in err.problems)
        return
    spec = worker_pod_spec(config.workload_settings(), config.pools[0], PLAN_REFS, "celery-main")
    container = spec["containers"][0]
    env_names = [e["name"] for e in container["env"]]
    assert len(env_names) == len(set(env_names)), "no extra env var shadows one of ours"
    assert {"CELERY_BROKER_URL", "SECRET_KEY", "PYTHONPATH"} <= set(env_names)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/tmp"] == "tmp" and mounts["/etc/celery-platform/hooks"] == "hooks"
    extra = [p for p, name in mounts.items() if name not in ("tmp", "hooks", "broker-ca")]
    assert not any(p == "/" or p.startswith(("/tmp", "/etc/celery-platform")) for p in extra)
    assert container["env"][env_names.index("PYTHONPATH")]["value"].endswith(":/etc/celery-platform/hooks") or (
        container["env"][env_names.index("PYTHONPATH")]["value"] == "/etc/celery-platform/hooks"
    )
    assert not set(config.pod.labels or {}) & set(OWN_LABELS)
    assert (
        celery_guardrails.validate_secret_env("kubernetes:apps/v1:Deployment", {"spec": {"template": {"spec": spec}}})
        == []
    )
    if not (config.pod.service_account and (config.pod.service_account.name or config.pod.service_account.create)):
        assert spec["automountServiceAccountToken"] is False


@given(name=st.from_regex(r"[A-Z][A-Z_]{0,20}", fullmatch=True))
def test_the_components_and_the_policy_pack_agree_on_which_env_names_look_secret(name: str) -> None:
    assert looks_secret(name) == celery_guardrails.looks_secret(name)


def test_every_env_name_we_set_is_reserved() -> None:
    assert {"CELERY_BROKER_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DATABASE_URL", "PYTHONPATH"} <= set(
        PLATFORM_ENV
    )
