"""CeleryPlatform built the way the plugin builds it for another language: camelCase inputs, under mocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError

from celery_platform import ValidationError, __version__
from celery_platform.render import RenderMocks
from provider.component import COMPONENTS, PACKAGE
from tests.conftest import is_secret, objects_of, resolve, run

TOKEN = "celery-platform:index:CeleryPlatform"
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}}


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
        "databaseUrl": pulumi.Output.secret("postgresql://app:pw@db.internal:5432/app"),
    }
    return {**base, **overrides}


def construct(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Construct through the SDK's ComponentProvider (input mapping included) and return the state."""
    provider = ComponentProvider(COMPONENTS, PACKAGE, version=__version__)
    result = run(lambda: provider.construct(name, TOKEN, values))
    return dict(result.state)


def test_the_platform_creates_its_namespace_two_deployments_and_one_beat(mocks: RenderMocks) -> None:
    construct("celery", inputs())
    [namespace] = objects_of(mocks, "Namespace")
    assert namespace["metadata"]["name"] == "team-b"
    assert sorted(d["metadata"]["name"] for d in objects_of(mocks, "Deployment")) == ["celery-io", "celery-main"]
    assert sorted(s["metadata"]["name"] for s in objects_of(mocks, "StatefulSet")) == ["celery-beat", "celery-redis"]
    assert {o["metadata"]["namespace"] for o in mocks.objects if o["kind"] != "Namespace"} == {"team-b"}


def test_integer_inputs_that_arrive_as_floats_become_whole_numbers(mocks: RenderMocks) -> None:
    construct("celery", inputs())
    [main] = [d for d in objects_of(mocks, "Deployment") if d["metadata"]["name"] == "celery-main"]
    args = main["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--concurrency") + 1] == "2"


def test_the_state_holds_every_schema_output(mocks: RenderMocks) -> None:
    state = construct("celery", inputs())
    assert set(state) == {"namespace", "secretName", "brokerHost", "brokerPort", "brokerUrl", "workerDeployments"}
    assert resolve(state["namespace"]) == "team-b"
    assert resolve(state["brokerHost"]) == "celery-redis.team-b.svc.cluster.local"
    assert resolve(state["brokerPort"]) == 6379
    assert resolve(state["workerDeployments"]) == {"main": "celery-main", "io": "celery-io"}
    assert is_secret(state["brokerUrl"])


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
    bad = inputs(
        namespace="Team_B",
        image="app:latest",
        pools=[{"name": "main", "queues": []}, {"name": "main", "queues": ["x"], "concurrency": 0.0}],
        limitRange={"maxLimitRequestRatio": {"cpu": 0.5}},
    )
    with pytest.raises(ComponentInitError) as caught:
        construct("celery", bad)
    error = caught.value.inner
    assert isinstance(error, ValidationError)
    assert error.subject == "CeleryPlatform 'celery'"
    fields = {p.field for p in error.problems}
    assert {
        "namespace",
        "image",
        "pools[0].queues",
        "pools[1].concurrency",
        "pools",
        "limitRange.maxLimitRequestRatio.cpu",
    } <= fields
    assert mocks.resources == []


def test_fails_when_the_pods_break_the_limit_range_of_an_existing_namespace(mocks: RenderMocks) -> None:
    # Requests of 100m under a 2x ratio allow limits up to 200m; 400m is the report's LimitRange failure.
    greedy = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "400m", "memory": "512Mi"}}
    with pytest.raises(ComponentInitError) as caught:
        construct(
            "celery",
            inputs(
                createNamespace=False, limitRange={}, pools=[{"name": "main", "queues": ["q"], "resources": greedy}]
            ),
        )
    error = caught.value.inner
    assert isinstance(error, ValidationError)
    assert any("maxLimitRequestRatio" in str(p) for p in error.problems)
    assert mocks.resources == []


def test_fails_when_the_database_url_is_not_postgresql(mocks: RenderMocks) -> None:
    with pytest.raises(ComponentInitError, match="databaseUrl"):
        construct("celery", inputs(databaseUrl="mysql://app:pw@db/app"))


def test_the_fit_your_cluster_inputs_reach_the_objects(mocks: RenderMocks) -> None:
    construct(
        "celery",
        inputs(
            podSecurityLevel="baseline",
            egressRules=[{"cidr": "10.20.0.0/16", "ports": [5432.0]}],
            runAsUser=20001.0,
            pod={
                "serviceAccount": {
                    "create": True,
                    "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/c"},
                },
                "imagePullSecrets": ["ghcr-pull"],
                "tolerations": [{"key": "dedicated", "value": "celery", "effect": "NoSchedule"}],
                "affinityJson": '{"nodeAffinity": {}}',
                "pythonPath": ["/app"],
            },
            externalBroker={
                "urlSecret": {"name": "managed-redis", "key": "url"},
                "host": "cache.example.com",
                "tls": True,
                "caSecret": {"name": "redis-ca", "key": "ca.crt"},
                "cidr": "10.30.0.0/16",
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
    assert policies["celery-broker-egress"]["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_fails_when_the_external_broker_has_no_cidr_for_its_dns_name(mocks: RenderMocks) -> None:
    with pytest.raises((ValidationError, ComponentInitError)) as err:
        construct(
            "celery", inputs(externalBroker={"urlSecret": {"name": "r", "key": "url"}, "host": "cache.example.com"})
        )
    assert "externalBroker.cidr" in str(err.value)


def test_a_pool_autoscales_through_the_package_with_floats_for_numbers(mocks: RenderMocks) -> None:
    pools = [
        {"name": "main", "queues": ["default"], "autoscaling": {"maxReplicas": 6.0, "prioritySteps": [0.0, 5.0]}},
    ]
    construct("celery", inputs(pools=pools, kedaOperator={"namespace": "platform-keda"}))
    [deployment] = objects_of(mocks, "Deployment")
    assert "replicas" not in deployment["spec"]
    [scaled] = objects_of(mocks, "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 6
    assert [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]] == ["default", "default\x06\x165"]
    [ingress] = [p for p in objects_of(mocks, "NetworkPolicy") if p["metadata"]["name"] == "celery-redis-ingress"]
    peers = ingress["spec"]["ingress"][0]["from"]
    assert peers[1]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "platform-keda"}}
