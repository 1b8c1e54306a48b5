"""CeleryPlatform built the way the plugin builds it for another language: camelCase inputs, under mocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import yaml
from pulumi.errors import InputPropertiesError
from pulumi.output import Unknown

from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import read_stack_config
from celery_platform.package.provider import CeleryPlatformProvider
from celery_platform.render.mocks import RenderMocks
from tests.conftest import is_secret, objects_of, resolve, run

TOKEN = "celery-platform:index:CeleryPlatform"
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}}
DATABASE_URL = "postgresql://app:hunter2-db@db.internal:5432/app"


def inputs(**overrides: Any) -> dict[str, Any]:
    """What a TypeScript or YAML program sends: schema names, numbers as floats, the URL a secret."""
    base: dict[str, Any] = {
        "namespace": "team-b",
        "image": "ghcr.io/acme/app:1.2.3",
        "celeryApp": "app",
        "pools": [
            {"name": "main", "queues": ["default"], "replicas": 2.0, "concurrency": 2.0, "resources": RESOURCES},
            {"name": "io", "queues": ["email", "webhooks"]},
        ],
        "databaseUrl": pulumi.Output.secret(DATABASE_URL),
    }
    return {**base, **overrides}


def construct(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Construct through the provider, as its gRPC server calls it, and return the state."""
    result = run(lambda: CeleryPlatformProvider().construct(name, TOKEN, values))
    return dict(result.state)


def refusal(values: dict[str, Any]) -> ValidationError:
    """The ValidationError that construct refuses ``values`` with, as the engine gets it."""
    with pytest.raises(InputPropertiesError) as caught:
        construct("celery", values)
    error = caught.value.__cause__
    assert isinstance(error, ValidationError)
    # The engine prints the message alone, so it must be the whole ValidationError.
    assert caught.value.message == str(error) and caught.value.errors == []
    return error


def test_the_platform_creates_its_namespace_two_deployments_and_one_beat(mocks: RenderMocks) -> None:
    construct("celery", inputs())
    [namespace] = objects_of(mocks, "Namespace")
    assert namespace["metadata"]["name"] == "team-b"
    assert sorted(d["metadata"]["name"] for d in objects_of(mocks, "Deployment")) == [
        "celery-exporter",
        "celery-io",
        "celery-main",
    ]
    # The broker's objects keep the names the stack's had before CeleryPlatform: a contract with state.
    assert sorted(s["metadata"]["name"] for s in objects_of(mocks, "StatefulSet")) == ["celery-beat", "redis"]
    assert {o["metadata"]["namespace"] for o in mocks.objects if o["kind"] != "Namespace"} == {"team-b"}


def test_integer_inputs_that_arrive_as_floats_become_whole_numbers(mocks: RenderMocks) -> None:
    construct("celery", inputs())
    [main] = [d for d in objects_of(mocks, "Deployment") if d["metadata"]["name"] == "celery-main"]
    assert main["spec"]["replicas"] == 2
    args = main["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--concurrency") + 1] == "2"


def test_the_state_holds_every_schema_output(mocks: RenderMocks) -> None:
    state = construct("celery", inputs())
    assert set(state) == {
        "namespace",
        "secretName",
        "brokerHost",
        "brokerPort",
        "brokerUrl",
        "workerDeployments",
        "taskRoutes",
    }
    assert resolve(state["namespace"]) == "team-b"
    assert resolve(state["brokerHost"]) == "redis.team-b.svc.cluster.local"
    assert resolve(state["brokerPort"]) == 6379
    assert resolve(state["workerDeployments"]) == {"main": "celery-main", "io": "celery-io"}
    assert is_secret(state["brokerUrl"])


def test_the_database_url_output_stays_secret_and_out_of_every_object(mocks: RenderMocks) -> None:
    construct("celery", inputs())
    [secret] = [s for s in mocks.resources if s[0] == "kubernetes:core/v1:Secret" and "DATABASE_URL" in str(s[2])]
    assert DATABASE_URL not in str(mocks.ordered())
    assert secret[2]["stringData"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"


def test_a_database_url_output_warns_that_egress_must_admit_the_database(
    mocks: RenderMocks, caplog: pytest.LogCaptureFixture
) -> None:
    construct("celery", inputs())
    [warning] = [r.getMessage() for r in caplog.records if "databaseUrl" in r.getMessage()]
    assert warning.startswith("databaseUrl is an Output, unread here, and the egress key is empty")
    assert DATABASE_URL not in caplog.text


def test_a_plain_database_url_by_ip_address_is_admitted_without_a_warning(
    mocks: RenderMocks, caplog: pytest.LogCaptureFixture
) -> None:
    construct("celery", inputs(databaseUrl="postgresql://app:pw@10.20.0.5:5432/app"))
    assert "databaseUrl" not in caplog.text
    [policy] = [p for p in objects_of(mocks, "NetworkPolicy") if p["metadata"]["name"].endswith("allow-egress")]
    assert {"ipBlock": {"cidr": "10.20.0.5/32"}} in [peer for rule in policy["spec"]["egress"] for peer in rule["to"]]


def test_an_existing_namespace_is_used_everywhere_and_never_created(mocks: RenderMocks) -> None:
    construct("celery", inputs(createNamespace=False, namespace="shared"))
    assert objects_of(mocks, "Namespace") == []
    assert objects_of(mocks, "LimitRange") == [] and objects_of(mocks, "ResourceQuota") == []
    assert {o["metadata"]["namespace"] for o in mocks.objects} == {"shared"}


def test_the_guardrails_take_the_given_limit_range_and_quota(mocks: RenderMocks) -> None:
    limit_range = {"maxLimitRequestRatio": {"cpu": 2.5, "memory": 2.0}, "max": {"cpu": "2", "memory": "2Gi"}}
    construct("celery", inputs(limitRange=limit_range, quota={"pods": 30.0, "limitsCpu": "6"}))
    [limits] = objects_of(mocks, "LimitRange")[0]["spec"]["limits"]
    assert limits["maxLimitRequestRatio"] == {"cpu": "2.5", "memory": "2"}
    assert limits["max"] == {"cpu": "2", "memory": "2Gi"}
    hard = objects_of(mocks, "ResourceQuota")[0]["spec"]["hard"]
    assert hard["pods"] == "30" and hard["limits.cpu"] == "6"


def test_beat_can_be_turned_off_and_redis_made_persistent(mocks: RenderMocks) -> None:
    construct("celery", inputs(beat={"enabled": False}, redis={"persistent": True, "storageSize": "2Gi"}))
    [redis] = objects_of(mocks, "StatefulSet")
    [claim] = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_fails_when_inputs_are_invalid_with_every_problem_and_nothing_registered(mocks: RenderMocks) -> None:
    error = refusal(
        inputs(
            namespace="Team_B",
            image="app:latest",
            pools=[{"name": "main", "queues": []}, {"name": "main", "queues": ["x"], "concurrency": 0.0}],
            limitRange={"maxLimitRequestRatio": {"cpu": 0.5}},
        )
    )
    assert error.subject == "CeleryPlatform 'celery'"
    fields = {p.field for p in error.problems}
    assert {
        "namespace",
        "image",
        "pools[0].queues",
        "pools[1].concurrency",
        "limitRange.maxLimitRequestRatio.cpu",
    } <= fields
    assert "namespace: not a valid RFC 1123 label (got 'Team_B', expected lowercase letters" in str(error)
    assert mocks.resources == []


def test_fails_when_a_type_is_wrong_with_the_stack_configs_own_problems(mocks: RenderMocks) -> None:
    bad = {"runAsUser": 1.5, "createNamespace": "maybe", "pools": [{"name": "main", "queues": ["q"], "replicaz": 2}]}
    error = refusal(inputs(**bad))
    as_config = {**inputs(**bad), "databaseUrl": DATABASE_URL}
    with pytest.raises(ValidationError) as stack:
        read_stack_config({k: yaml.safe_dump(v) if isinstance(v, list) else v for k, v in as_config.items()})
    assert error.problems == stack.value.problems
    assert "pools[0].replicaz: unknown key; did you mean 'replicas'?" in str(error)
    assert mocks.resources == []


def test_fails_when_an_input_is_not_in_the_schema_with_a_did_you_mean(mocks: RenderMocks) -> None:
    error = refusal(inputs(namspace="team-c"))
    [problem] = error.problems
    assert problem.field == "namspace" and "did you mean 'namespace'" in problem.problem
    assert mocks.resources == []


def test_fails_when_an_input_that_is_not_in_the_schema_is_an_output(mocks: RenderMocks) -> None:
    error = refusal(inputs(namspace=pulumi.Output.from_input("team-c")))
    [problem] = error.problems
    assert problem.field == "namspace" and "did you mean 'namespace'" in problem.problem
    assert "team-c" not in str(error)


def test_fails_when_a_required_input_is_missing(mocks: RenderMocks) -> None:
    values = inputs()
    del values["image"]
    [problem] = refusal(values).problems
    assert (problem.field, problem.problem) == ("image", "is required")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("namespace", pulumi.Output.from_input("team-b")),
        ("createNamespace", Unknown()),
        ("pools", [{"name": "main", "queues": [pulumi.Output.from_input("default")]}]),
        ("image", pulumi.Output.secret("ghcr.io/acme/app:1.2.3")),
    ],
)
def test_fails_when_a_field_that_is_not_secret_is_an_output_or_unknown(
    mocks: RenderMocks, name: str, value: Any
) -> None:
    error = refusal(inputs(**{name: value}))
    [problem] = error.problems
    assert problem.field == name and problem.problem.startswith("is an Output")
    assert "a plain value" in problem.expected
    assert mocks.resources == []


def test_fails_when_an_output_is_refused_with_the_other_problems_too(mocks: RenderMocks) -> None:
    error = refusal(inputs(image=pulumi.Output.from_input("x"), namespace="Team_B", runAsUser="root"))
    assert [p.field for p in error.problems] == ["image", "runAsUser", "namespace"]
    error = refusal(inputs(image=pulumi.Output.from_input("x"), namespace="Team_B"))
    assert [p.field for p in error.problems] == ["image", "namespace"]


def test_fails_when_the_database_url_is_not_postgresql_and_never_shows_it(mocks: RenderMocks) -> None:
    error = refusal(inputs(databaseUrl="mysql://app:hunter2-db@db/app"))
    assert [p.field for p in error.problems] == ["databaseUrl"]
    assert "hunter2" not in str(error)


def test_fails_when_a_secret_has_the_wrong_type_and_never_shows_it(mocks: RenderMocks) -> None:
    error = refusal(inputs(sentryDsn=["https://hunter2@sentry.io/1"]))
    assert [p.field for p in error.problems] == ["sentryDsn"]
    assert "hunter2" not in str(error)


def test_fails_when_the_resource_type_is_not_ours(mocks: RenderMocks) -> None:
    with pytest.raises(pulumi.RunError, match="celery-platform:index:CeleryPlatform"):
        run(lambda: CeleryPlatformProvider().construct("celery", "celery-platform:index:Other", inputs()))
    assert mocks.resources == []


def test_a_refusal_reaches_the_engine_as_its_message_alone(mocks: RenderMocks) -> None:
    with pytest.raises(InputPropertiesError) as caught:
        construct("celery", inputs(namespace="Team_B"))
    assert caught.value.message.startswith("CeleryPlatform 'celery' is invalid (1 problem(s)):\n  - namespace:")


def test_the_fit_your_cluster_inputs_reach_the_objects(mocks: RenderMocks) -> None:
    construct(
        "celery",
        inputs(
            podSecurityLevel="baseline",
            egress=[{"cidr": "10.20.0.0/16", "ports": [5432.0]}],
            runAsUser=20001.0,
            monitoring={"enabled": False},
            pod={
                "serviceAccount": {
                    "create": True,
                    "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/c"},
                },
                "imagePullSecrets": ["ghcr-pull"],
                "tolerations": [{"key": "dedicated", "value": "celery", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {}},
                "pythonPath": ["/app"],
            },
            broker={
                "type": "external",
                "external": {
                    "urlSecret": {"name": "managed-redis", "key": "url"},
                    "host": "cache.example.com",
                    "tls": True,
                    "caSecret": {"name": "redis-ca", "key": "ca.crt"},
                    "cidr": "10.30.0.0/16",
                },
            },
        ),
    )
    [namespace] = objects_of(mocks, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert not [s for s in objects_of(mocks, "StatefulSet") if s["metadata"]["name"] == "celery-redis"]
    [account] = objects_of(mocks, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/c"}
    [main] = [d for d in objects_of(mocks, "Deployment") if d["metadata"]["name"] == "celery-main"]
    pod = main["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "celery" and pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert pod["securityContext"]["runAsUser"] == 20001 and pod["affinity"] == {"nodeAffinity": {}}
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["CELERY_PLATFORM_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {"name": "managed-redis", "key": "url"}
    policies = {p["metadata"]["name"]: p for p in objects_of(mocks, "NetworkPolicy")}
    assert policies["broker-egress"]["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_fails_when_the_external_broker_has_no_cidr_for_its_dns_name(mocks: RenderMocks) -> None:
    external = {"urlSecret": {"name": "r", "key": "url"}, "host": "cache.example.com"}
    error = refusal(inputs(broker={"type": "external", "external": external}))
    assert "broker.external.cidr" in str(error)
    assert mocks.resources == []


def test_a_pool_autoscales_through_the_package_with_floats_for_numbers(mocks: RenderMocks) -> None:
    pools = [
        {"name": "main", "queues": ["default"], "autoscaling": {"maxReplicas": 6.0, "prioritySteps": [0.0, 5.0]}},
    ]
    construct("celery", inputs(pools=pools, kedaOperator={"namespace": "platform-keda"}))
    [deployment] = [d for d in objects_of(mocks, "Deployment") if d["metadata"]["name"] == "celery-main"]
    assert "replicas" not in deployment["spec"]
    [scaled] = objects_of(mocks, "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 6
    assert [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]] == ["default", "default\x06\x165"]
    [ingress] = [p for p in objects_of(mocks, "NetworkPolicy") if p["metadata"]["name"] == "redis-ingress"]
    peers = ingress["spec"]["ingress"][0]["from"]
    assert peers[1]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "platform-keda"}}
