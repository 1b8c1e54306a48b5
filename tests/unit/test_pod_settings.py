"""Pod settings, worker settings and the external broker: each field, each refusal, as plain data."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from celery_platform.builders.broker import broker_url_env, url_secret_data
from celery_platform.builders.celery_pods import PLAN_REFS, beat_pod_spec, pod_problems, worker_pod_spec
from celery_platform.builders.workloads import Refs, worker_args
from celery_platform.config.broker import BrokerTLS, ExternalBrokerSpec
from celery_platform.config.egress import EgressRule, database_egress
from celery_platform.config.env import EnvFrom, EnvVar, KeyRef
from celery_platform.config.placement import SpreadConstraint, Toleration
from celery_platform.config.podsettings import PodSettings, ServiceAccount
from celery_platform.config.problems import Problem, ValidationError
from celery_platform.config.specs import BeatSpec, PoolSpec
from celery_platform.config.stack import parse_stack_config
from celery_platform.config.volumes import EmptyDir, Volume, VolumeMount
from celery_platform.config.worker_args import check_worker_args
from celery_platform.config.workload import WorkloadSettings
from celery_platform.resources.namespace import NamespaceArgs

IMAGE = "registry.example.com/app:1.0.0"
POOL = PoolSpec(name="main", queues=("default",))


def settings(**pod: Any) -> WorkloadSettings:
    return WorkloadSettings(image=IMAGE, app="proj", pod=PodSettings(**pod))


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


def worker(pod: PodSettings | None = None, **pool: Any) -> dict[str, Any]:
    spec = PoolSpec(name="main", queues=("default",), pod=pod, **pool)
    return worker_pod_spec(WorkloadSettings(image=IMAGE, app="proj"), spec, PLAN_REFS, "celery-main")


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in spec["containers"][0]["env"]}


# --- identity -----------------------------------------------------------------------------------


def test_no_service_account_means_the_default_one_and_no_token() -> None:
    spec = worker()
    assert "serviceAccountName" not in spec and spec["automountServiceAccountToken"] is False


def test_a_created_service_account_is_named_after_the_component_unless_named() -> None:
    spec = worker(PodSettings(service_account=ServiceAccount(create=True)))
    assert spec["serviceAccountName"] == "celery" and spec["automountServiceAccountToken"] is False
    named = worker(PodSettings(service_account=ServiceAccount(name="app", automount_token=True)))
    assert named["serviceAccountName"] == "app" and named["automountServiceAccountToken"] is True


def test_fails_when_an_existing_service_account_gets_annotations() -> None:
    account = ServiceAccount(name="app", annotations={"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"})
    [problem] = account.validate("pod.serviceAccount")
    assert problem.field == "pod.serviceAccount.annotations" and "create: true" in problem.expected


def test_fails_when_the_default_service_account_token_would_be_mounted() -> None:
    assert fields(ServiceAccount(automount_token=True).validate("sa")) == ["sa.automountToken"]


def test_fails_when_two_created_service_accounts_share_a_name_with_different_annotations() -> None:
    base = settings(service_account=ServiceAccount(create=True, name="app"))
    other = PodSettings(service_account=ServiceAccount(create=True, name="app", annotations={"a": "b"}))
    pools = [PoolSpec(name="main", queues=("q",), pod=other)]
    assert "pools[0].pod.serviceAccount" in fields(pod_problems(base, pools, BeatSpec()))


# --- registry and placement ---------------------------------------------------------------------


def test_pull_secrets_placement_and_priority_reach_the_pod() -> None:
    pod = PodSettings(
        image_pull_secrets=("ghcr-pull",),
        node_selector={"workload": "celery"},
        tolerations=(Toleration(key="dedicated", value="celery", effect="NoSchedule"),),
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        priority_class_name="celery-high",
    )
    spec = worker(pod)
    assert spec["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert spec["nodeSelector"] == {"workload": "celery"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "celery", "effect": "NoSchedule"}]
    assert "nodeAffinity" in spec["affinity"] and spec["priorityClassName"] == "celery-high"


@pytest.mark.parametrize(
    ("toleration", "field"),
    [
        (Toleration(key="k", operator="In"), "t.operator"),
        (Toleration(key="k", operator="Exists", value="v"), "t.value"),
        (Toleration(), "t.key"),
        (Toleration(key="k", effect="NoRun"), "t.effect"),
        (Toleration(key="k", effect="NoSchedule", toleration_seconds=5), "t.tolerationSeconds"),
    ],
)
def test_fails_when_a_toleration_is_one_the_api_server_refuses(toleration: Toleration, field: str) -> None:
    assert field in fields(toleration.validate("t"))


def test_fails_when_affinity_names_an_unknown_kind_or_priority_is_a_system_class() -> None:
    problems = PodSettings(affinity={"nodeAfinity": {}}, priority_class_name="system-node-critical").validate("pod")
    assert fields(problems) == ["pod.affinity.nodeAfinity", "pod.priorityClassName"]


def test_spread_is_on_by_default_for_pools_off_for_beat_and_overridable() -> None:
    keys = [c["topologyKey"] for c in worker()["topologySpreadConstraints"]]
    assert keys == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    assert "topologySpreadConstraints" not in worker(PodSettings(topology_spread=()))
    custom = worker(
        PodSettings(topology_spread=(SpreadConstraint(topology_key="zone", when_unsatisfiable="DoNotSchedule"),))
    )
    [constraint] = custom["topologySpreadConstraints"]
    assert constraint["whenUnsatisfiable"] == "DoNotSchedule"
    assert constraint["labelSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "celery-worker", "app.kubernetes.io/instance": "celery-main"}
    }
    assert "topologySpreadConstraints" not in beat_pod_spec(settings(), BeatSpec(), PLAN_REFS)


def test_fails_when_a_spread_constraint_is_malformed() -> None:
    bad = SpreadConstraint(topology_key="bad key", max_skew=0, when_unsatisfiable="Maybe")
    assert fields(bad.validate("s")) == ["s.topologyKey", "s.maxSkew", "s.whenUnsatisfiable"]


# --- labels and annotations -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of"])
def test_fails_when_a_pod_label_overrides_one_the_platform_selects_by(key: str) -> None:
    [problem] = PodSettings(labels={key: "x"}).validate("pod")
    assert problem.field == f"pod.labels.{key}" and "cannot be overridden" in problem.problem


def test_fails_when_a_label_or_annotation_key_is_invalid() -> None:
    problems = PodSettings(labels={"team": "a b"}, annotations={"-bad": "x"}).validate("pod")
    assert fields(problems) == ["pod.annotations.-bad", "pod.labels.team"]


# --- env ------------------------------------------------------------------------------------------


def test_extra_env_comes_after_ours_from_values_secrets_and_config_maps() -> None:
    pod = PodSettings(
        env=(
            EnvVar(name="SMTP_HOST", value="smtp.example.com"),
            EnvVar(name="SMTP_PASSWORD", secret_key_ref=KeyRef(name="smtp", key="password")),
            EnvVar(name="FEATURE_FLAGS", config_map_key_ref=KeyRef(name="flags", key="all", optional=True)),
        ),
        env_from=(EnvFrom(config_map="app-config", prefix="APP_"),),
    )
    spec = worker(pod)
    env = env_of(spec)
    assert list(env)[-3:] == ["SMTP_HOST", "SMTP_PASSWORD", "FEATURE_FLAGS"]
    assert env["SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "smtp", "key": "password"}
    assert env["FEATURE_FLAGS"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    assert spec["containers"][0]["envFrom"] == [{"configMapRef": {"name": "app-config"}, "prefix": "APP_"}]


@pytest.mark.parametrize("name", ["CELERY_BROKER_URL", "SECRET_KEY", "DATABASE_URL", "PYTHONPATH"])
def test_fails_when_extra_env_collides_with_a_name_we_set_naming_both(name: str) -> None:
    [problem] = EnvVar(name=name, secret_key_ref=KeyRef(name="s", key="k")).validate("pod.env[0]")
    assert (
        problem.field == "pod.env[0].name" and f"collides with {name}, which the platform sets from" in problem.problem
    )


def test_fails_when_an_env_var_has_no_source_or_two() -> None:
    assert fields(EnvVar(name="A").validate("e")) == ["e"]
    assert fields(EnvVar(name="A", value="1", config_map_key_ref=KeyRef(name="c", key="k")).validate("e")) == ["e"]


def test_fails_when_a_secret_looking_name_has_a_literal_value() -> None:
    assert fields(EnvVar(name="SMTP_PASSWORD", value="hunter2").validate("e")) == ["e.value"]


def test_fails_when_env_names_repeat_or_env_from_has_no_single_source() -> None:
    pod = PodSettings(env=(EnvVar(name="A", value="1"), EnvVar(name="A", value="2")), env_from=(EnvFrom(),))
    assert fields(pod.validate("pod")) == ["pod.env", "pod.envFrom[0]"]


# --- volumes --------------------------------------------------------------------------------------


def test_extra_volumes_and_mounts_reach_the_pod_and_the_container() -> None:
    pod = PodSettings(
        volumes=(
            Volume(name="smtp-ca", secret="smtp-ca"),
            Volume(name="scratch", empty_dir=EmptyDir(size_limit="1Gi")),
        ),
        volume_mounts=(VolumeMount(name="smtp-ca", mount_path="/etc/smtp"),),
    )
    spec = worker(pod)
    assert [v["name"] for v in spec["volumes"]] == ["tmp", "hooks", "smtp-ca", "scratch"]
    assert spec["containers"][0]["volumeMounts"][-1] == {"name": "smtp-ca", "mountPath": "/etc/smtp", "readOnly": True}


@pytest.mark.parametrize("path", ["/tmp", "/tmp/x", "/", "/etc/celery-platform", "/etc/celery-platform/hooks/x"])
def test_fails_when_a_mount_goes_over_or_under_tmp_or_the_hooks(path: str) -> None:
    problems = VolumeMount(name="v", mount_path=path).validate("m")
    assert problems and all(p.field == "m.mountPath" for p in problems)


def test_fails_when_a_volume_reuses_our_name_or_a_mount_names_no_volume() -> None:
    pod = PodSettings(
        volumes=(Volume(name="tmp", config_map="x"),), volume_mounts=(VolumeMount(name="nope", mount_path="/x"),)
    )
    assert fields(pod.validate("pod")) == ["pod.volumes[0].name"]
    assert fields(pod.validate_references("pod")) == ["pod.volumeMounts[0].name"]


def test_fails_when_a_memory_emptydir_has_no_size_limit_or_a_volume_two_sources() -> None:
    assert fields(Volume(name="m", empty_dir=EmptyDir(medium="Memory")).validate("v")) == ["v.emptyDir.sizeLimit"]
    assert fields(Volume(name="m", secret="a", config_map="b").validate("v")) == ["v"]


def test_a_memory_backed_volume_comes_off_the_per_child_budget() -> None:
    plain = worker_args("proj", POOL)
    pool = PoolSpec(name="main", queues=("default",))
    tighter = worker_args("proj", pool, memory_volume_bytes=64 * 1024**2)
    per_child = lambda args: int(args[args.index("--max-memory-per-child") + 1])  # noqa: E731
    assert per_child(plain) - per_child(tighter) == 64 * 1024 // 2


def test_fails_when_memory_volumes_take_the_whole_memory_limit() -> None:
    pod = PodSettings(
        volumes=(Volume(name="m", empty_dir=EmptyDir(medium="Memory", size_limit="512Mi")),),
        volume_mounts=(VolumeMount(name="m", mount_path="/scratch", read_only=False),),
    )
    assert fields(pod_problems(WorkloadSettings(image=IMAGE, app="p", pod=pod), [POOL], BeatSpec())) == [
        "pools[0].pod.volumes"
    ]


# --- pythonPath and overrides ---------------------------------------------------------------------


def test_python_path_keeps_the_images_entries_first_and_adds_the_hooks() -> None:
    env = env_of(worker(PodSettings(python_path=("/app", "/app/src"))))
    assert env["PYTHONPATH"]["value"] == "/app:/app/src:/etc/celery-platform/hooks"


def test_fails_when_python_path_is_relative_or_the_hooks_dir() -> None:
    problems = PodSettings(python_path=("app", "/etc/celery-platform/hooks")).validate("pod")
    assert fields(problems) == ["pod.pythonPath[0]", "pod.pythonPath[1]"]


def test_a_pool_override_replaces_only_the_fields_it_sets() -> None:
    platform = PodSettings(image_pull_secrets=("pull",), node_selector={"a": "b"})
    merged = platform.merged(PodSettings(node_selector={"c": "d"}))
    assert merged.image_pull_secrets == ("pull",) and merged.node_selector == {"c": "d"}
    beat = beat_pod_spec(
        settings(image_pull_secrets=("pull",)), BeatSpec(pod=PodSettings(image_pull_secrets=())), PLAN_REFS
    )
    assert "imagePullSecrets" not in beat


# --- worker settings ------------------------------------------------------------------------------


def test_pool_type_log_level_and_extra_args_reach_the_worker_args() -> None:
    args = worker_args(
        "proj",
        PoolSpec(
            name="io",
            queues=("q",),
            pool_type="threads",
            concurrency=8,
            log_level="debug",
            extra_args=("--max-tasks-per-child=50",),
        ),
    )
    assert args[args.index("--pool") + 1] == "threads" and args[args.index("--loglevel") + 1] == "DEBUG"
    assert "--max-memory-per-child" not in args and args[-1] == "--max-tasks-per-child=50"
    assert "--max-memory-per-child" in worker_args("proj", POOL)


def test_fails_when_the_pool_type_is_unknown_or_solo_runs_more_than_one() -> None:
    assert fields(PoolSpec(name="p", queues=("q",), pool_type="fork").validate("p")) == ["p.poolType"]
    assert fields(PoolSpec(name="p", queues=("q",), pool_type="solo", concurrency=2).validate("p")) == ["p.concurrency"]
    assert PoolSpec(name="p", queues=("q",), pool_type="solo", concurrency=1).validate("p") == []


def test_fails_when_the_log_level_is_unknown() -> None:
    assert fields(PoolSpec(name="p", queues=("q",), log_level="LOUD").validate("p")) == ["p.logLevel"]
    assert fields(BeatSpec(log_level="LOUD").validate("beat")) == ["beat.logLevel"]


@pytest.mark.parametrize(
    "arg",
    [
        "-Q",
        "-Qdefault",
        "--queues=a",
        "-c4",
        "--concurrency",
        "-n",
        "--include",
        "-P",
        "--pool=solo",
        "-B",
        "--detach",
        "--autoscale=4,1",
        "--loglevel",
    ],
)
def test_fails_when_an_extra_worker_arg_is_one_we_own(arg: str) -> None:
    [problem] = check_worker_args("extraArgs", [arg])
    # An owned option with its value is the platform's; without one, click (and so celery) refuses it anyway.
    assert "which is the platform's" in problem.problem or "requires an argument" in problem.problem


def test_extra_worker_args_we_do_not_own_pass() -> None:
    assert check_worker_args("a", ["--max-tasks-per-child=100", "-E", "--time-limit", "300", "-O", "fair"]) == []


# --- broker ---------------------------------------------------------------------------------------


def test_our_redis_broker_url_is_read_as_is_and_a_tls_one_always_requires_certificates() -> None:
    assert broker_url_env("s", "K", None) == [
        {"name": "CELERY_BROKER_URL", "valueFrom": {"secretKeyRef": {"name": "s", "key": "K"}}}
    ]
    tls = broker_url_env("s", "K", BrokerTLS(ca_secret=KeyRef(name="ca", key="ca.crt")))
    assert (
        tls[1]["value"]
        == "$(CELERY_PLATFORM_BROKER_URL)?ssl_cert_reqs=required&ssl_ca_certs=/etc/celery-platform/broker-ca/ca.crt"
    )
    public = broker_url_env("s", "K", BrokerTLS())
    assert public[1]["value"].endswith("?ssl_cert_reqs=required") and len(public) == 2
    # A URL that our Secret keeps with its checks is read as is: the same kind of source as our Redis's.
    kept = broker_url_env("s", "K", BrokerTLS(ca_secret=KeyRef(name="ca", key="ca.crt"), url_has_checks=True))
    assert kept == [*broker_url_env("s", "K", None), {"name": "CELERY_BROKER_CA_FILE", "value": CA_FILE}]


CA_FILE = "/etc/celery-platform/broker-ca/ca.crt"


def test_our_secret_keeps_a_tls_url_with_its_certificate_checks_whatever_its_query_held() -> None:
    tls = BrokerTLS(ca_secret=KeyRef(name="ca", key="ca.crt"), url_has_checks=True)
    url = "rediss://:pw@cache.example.com:6380/0?ssl_cert_reqs=none&health_check_interval=10"
    assert url_secret_data(url, tls)["CELERY_BROKER_URL"] == (
        f"rediss://:pw@cache.example.com:6380/0?health_check_interval=10&ssl_cert_reqs=required&ssl_ca_certs={CA_FILE}"
    )
    assert url_secret_data("redis://:pw@h:6379/0")["CELERY_BROKER_URL"] == "redis://:pw@h:6379/0"


def test_a_tls_broker_with_a_ca_mounts_it_in_the_init_and_celery_containers() -> None:
    refs = Refs(
        **{
            **PLAN_REFS.__dict__,
            "broker_tls": BrokerTLS(ca_config_map=KeyRef(name="ca", key="root.pem")),
            "broker_port": 6380,
        }
    )
    spec = worker_pod_spec(WorkloadSettings(image=IMAGE, app="p"), POOL, refs, "celery-main")
    [volume] = [v for v in spec["volumes"] if v["name"] == "broker-ca"]
    assert volume["configMap"]["items"] == [{"key": "root.pem", "path": "ca.crt"}]
    init = spec["initContainers"][0]
    init_env = {e["name"]: e.get("value") for e in init["env"]}
    assert init_env["BROKER_TLS"] == "1" and init_env["REDIS_PORT"] == "6380"
    assert init_env["BROKER_CA_FILE"] == "/etc/celery-platform/broker-ca/ca.crt"
    assert init["volumeMounts"][0]["name"] == "broker-ca"
    assert "REDISCLI_AUTH" not in init_env, "the password comes out of the URL inside the shell, never as a value"


def test_an_external_broker_takes_host_port_and_tls_from_its_url() -> None:
    spec = ExternalBrokerSpec(cidr="10.0.0.0/16")
    assert spec.validate("b", "rediss://:pw@cache.example.com:6380/0", url_given=True) == []
    assert spec.resolve("rediss://:pw@cache.example.com:6380/0") == ("cache.example.com", 6380, True)
    assert ExternalBrokerSpec().egress_cidr("redis://:pw@10.1.2.3/0") == "10.1.2.3/32"


@pytest.mark.parametrize(
    ("spec", "url", "field"),
    [
        (ExternalBrokerSpec(), None, "b.urlSecret"),
        (ExternalBrokerSpec(url_secret=KeyRef(name="u", key="url"), cidr="10.0.0.0/8"), None, "b.host"),
        (ExternalBrokerSpec(url_secret=KeyRef(name="u", key="url"), host="cache.example.com"), None, "b.cidr"),
        (ExternalBrokerSpec(host="other.example.com", cidr="10.0.0.0/8"), "redis://:p@cache.example.com/0", "b.host"),
        (ExternalBrokerSpec(tls=False, cidr="10.0.0.0/8"), "rediss://:p@cache.example.com/0", "b.tls"),
        (
            ExternalBrokerSpec(cidr="10.0.0.0/8", ca_secret=KeyRef(name="ca", key="c")),
            "redis://:p@h.example/0",
            "b.caSecret",
        ),
        (ExternalBrokerSpec(cidr="10.0.0.1/8"), "redis://:p@h.example/0", "b.cidr"),
        (ExternalBrokerSpec(cidr="10.0.0.0/8"), "amqp://guest@h/", "brokerUrl"),
    ],
)
def test_fails_when_an_external_broker_is_inconsistent(spec: ExternalBrokerSpec, url: str | None, field: str) -> None:
    assert field in fields(spec.validate("b", url, url_given=url is not None))


def test_fails_when_a_broker_url_problem_would_print_the_password() -> None:
    [problem] = ExternalBrokerSpec(cidr="10.0.0.0/8").validate("b", "redis://:hunter2@h/0?x=1", url_given=True)
    assert "hunter2" not in str(problem)


# --- egress ---------------------------------------------------------------------------------------


def test_egress_is_narrow_by_default_and_admits_a_database_named_by_address() -> None:
    assert NamespaceArgs(name="ns").egress_cidrs == ()
    assert database_egress("postgresql://u:p@10.20.1.5:5433/app") == EgressRule(cidr="10.20.1.5/32", ports=(5433,))
    assert database_egress("postgresql://u:p@db.internal/app") is None


def test_fails_when_an_egress_rule_is_not_a_cidr_or_port() -> None:
    assert fields(EgressRule(cidr="10.0.0.0/33", ports=(0,)).validate("e")) == ["e.cidr", "e.ports[0]"]


# --- stack config ---------------------------------------------------------------------------------

STACK = {
    "image": IMAGE,
    "databaseUrl": "postgresql://app:pw@10.20.1.5:5432/app",
    "pools": yaml.safe_dump([{"name": "main", "queues": ["default"]}]),
}


def test_the_stack_keys_parse_into_the_components_own_settings() -> None:
    config = parse_stack_config(
        {
            **STACK,
            "pod": yaml.safe_dump(
                {
                    "serviceAccount": {"create": True, "annotations": {"iam.gke.io/gcp-service-account": "a@b.iam"}},
                    "imagePullSecrets": ["pull"],
                    "tolerations": [{"key": "dedicated", "value": "celery", "effect": "NoSchedule"}],
                    "env": [{"name": "SMTP_USER", "configMapKeyRef": {"name": "smtp", "key": "user"}}],
                    "pythonPath": ["/app"],
                }
            ),
            "broker": yaml.safe_dump({"type": "external", "external": {"cidr": "10.30.0.0/16"}}),
            "brokerUrl": "rediss://:secretpw@cache.example.com:6380/0",
            "egress": yaml.safe_dump([{"cidr": "10.40.0.0/16", "ports": [443]}]),
            "monitoring": "enabled: false",
        }
    )
    assert config.pod.service_account == ServiceAccount(
        create=True, annotations={"iam.gke.io/gcp-service-account": "a@b.iam"}
    )
    assert config.broker.external is not None and config.egress == (EgressRule(cidr="10.40.0.0/16", ports=(443,)),)


def test_the_metrics_exporter_stays_on_with_a_tls_broker() -> None:
    config = parse_stack_config(
        {
            **STACK,
            "broker": yaml.safe_dump({"type": "external", "external": {"cidr": "10.30.0.0/16"}}),
            "brokerUrl": "rediss://:secretpw@cache.example.com:6380/0",
        }
    )
    assert config.monitoring.enabled and config.validate() == []


def test_fails_when_the_exporters_pod_settings_set_what_only_the_app_container_takes() -> None:
    with pytest.raises(ValidationError) as err:
        parse_stack_config(
            {
                **STACK,
                "monitoring": yaml.safe_dump(
                    {
                        "pod": {
                            "env": [{"name": "A", "value": "1"}],
                            "pythonPath": ["/app"],
                            "serviceAccount": {"create": True},
                        }
                    }
                ),
            }
        )
    text = str(err.value)
    for field in ("monitoring.pod.env", "monitoring.pod.pythonPath", "monitoring.pod.serviceAccount.create"):
        assert field in text, text


def test_fails_when_the_stack_sets_a_broker_url_for_our_redis_without_printing_it() -> None:
    with pytest.raises(ValidationError) as err:
        parse_stack_config({**STACK, "brokerUrl": "redis://:hunter2hunter2@h/0"})
    assert "brokerUrl" in str(err.value) and "hunter2" not in str(err.value)


def test_fails_when_stack_pod_settings_hold_several_problems_reported_at_once() -> None:
    pod = {
        "labels": {"app.kubernetes.io/name": "x"},
        "env": [{"name": "SECRET_KEY", "value": "x"}],
        "volumeMounts": [{"name": "v", "mountPath": "/tmp"}],
    }
    with pytest.raises(ValidationError) as err:
        parse_stack_config({**STACK, "pod": yaml.safe_dump(pod)})
    found = {p.field for p in err.value.problems}
    assert {
        "pod.labels.app.kubernetes.io/name",
        "pod.env[0].name",
        "pod.volumeMounts[0].mountPath",
        "pod.volumeMounts[0].name",
    } <= found
