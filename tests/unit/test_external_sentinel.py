"""An external broker fronted by Sentinels: the rules of its settings, and what the render gives every pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from celery_platform.config.broker import ExternalBrokerSpec, ExternalSentinel
from celery_platform.config.env import KeyRef
from celery_platform.config.problems import Problem
from celery_platform.config.secret_values import check_broker_url
from celery_platform.render import render_documents

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw1234567890abcdefXY"
URL = f"sentinel://:{PASSWORD}@s0.example.com:26379/0;sentinel://:{PASSWORD}@s1.example.com:26380/0"
SPEC = ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="mymaster"), cidr="10.30.0.0/16")


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


def test_a_sentinel_url_names_every_sentinel_and_the_egress_opens_their_ports_and_the_data_port() -> None:
    assert SPEC.validate("b", URL, url_given=True) == []
    assert SPEC.sentinel_addresses(URL) == ("s0.example.com:26379", "s1.example.com:26380")
    assert SPEC.egress_ports(URL) == [6379, 26379, 26380]
    listed = ExternalBrokerSpec(
        sentinel=ExternalSentinel(master_name="m", sentinels=("10.0.0.5:5000",)),
        url_secret=KeyRef(name="u", key="url"),
        cidr="10.0.0.0/16",
        port=7000,
    )
    assert listed.validate("b") == []
    assert listed.sentinel_addresses(None) == ("10.0.0.5:5000",)
    assert listed.egress_ports(None) == [5000, 7000]


@pytest.mark.parametrize(
    ("spec", "url", "field"),
    [
        (ExternalBrokerSpec(cidr="10.0.0.0/8"), URL, "b.sentinel"),
        (SPEC, "redis://:p@cache.example.com/0", "brokerUrl"),
        (
            ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="m"), url_secret=KeyRef(name="u", key="k")),
            None,
            "b.sentinel.sentinels",
        ),
        (ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="m")), URL, "b.cidr"),
        (
            ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="m m"), cidr="10.0.0.0/8"),
            URL,
            "b.sentinel.masterName",
        ),
        (ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="m"), cidr="10.0.0.0/8", tls=True), URL, "b.tls"),
        (
            ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="m"), cidr="10.0.0.0/8", host="h.example"),
            URL,
            "b.host",
        ),
        (
            ExternalBrokerSpec(
                sentinel=ExternalSentinel(master_name="m", sentinels=("[2001:db8::1]:26379",)), cidr="10.0.0.0/8"
            ),
            URL,
            "b.sentinel.sentinels[0]",
        ),
        (
            ExternalBrokerSpec(sentinel=ExternalSentinel(master_name="m", sentinels=("s:0",)), cidr="10.0.0.0/8"),
            URL,
            "b.sentinel.sentinels[0]",
        ),
        (SPEC, f"sentinel://:{PASSWORD}@s0.example.com/0;sentinel://:other-password-0000@s1/0", "brokerUrl"),
    ],
)
def test_fails_when_a_sentinel_fronted_broker_is_inconsistent(
    spec: ExternalBrokerSpec, url: str | None, field: str
) -> None:
    problems = spec.validate("b", url, url_given=url is not None)
    assert field in fields(problems)
    assert all(PASSWORD not in str(p) for p in problems), "a problem must never print the password"


@given(st.lists(st.integers(min_value=-5, max_value=70000), min_size=1, max_size=4))
def test_every_sentinel_port_is_judged_as_a_tcp_port(ports: list[int]) -> None:
    url = ";".join(f"sentinel://:{PASSWORD}@s{i}.example.com:{port}/0" for i, port in enumerate(ports))
    valid = all(1 <= port <= 65535 for port in ports)
    assert (check_broker_url("brokerUrl", url) == []) is valid


def _stack(tmp_path: Path, broker: dict[str, Any], extra: dict[str, Any]) -> Path:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["celery-platform:broker"] = broker
    document["config"].update(extra)
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_every_celery_pod_asks_the_listed_sentinels_for_the_master_of_an_external_broker(tmp_path: Path) -> None:
    broker = {
        "type": "external",
        "external": {
            "cidr": "10.30.0.0/16",
            "urlSecret": {"name": "redis", "key": "url"},
            "passwordSecret": {"name": "redis", "key": "password"},
            "sentinel": {
                "masterName": "mymaster",
                "sentinels": ["s0.example.com:26379", "s1.example.com:26379", "s2.example.com:26379"],
                "passwordSecret": {"name": "redis", "key": "sentinel-password"},
            },
        },
    }
    docs = render_documents("dev", _stack(tmp_path, broker, {}))
    celery_pods = [
        d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"].startswith("celery")
    ]
    assert len(celery_pods) >= 3  # a pool, beat and the exporter
    for pod in celery_pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["CELERY_BROKER_SENTINEL_MASTER"]["value"] == "mymaster"
        assert env["CELERY_BROKER_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis",
            "key": "sentinel-password",
        }
        for init in pod.get("initContainers", []):
            init_env = {e["name"]: e.get("value") for e in init["env"]}
            assert init_env["BROKER_SENTINELS"] == "s0.example.com:26379 s1.example.com:26379 s2.example.com:26379"
    [egress] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "broker-egress"]
    assert egress["spec"]["egress"][0]["ports"] == [
        {"protocol": "TCP", "port": 6379},
        {"protocol": "TCP", "port": 26379},
    ]


@pytest.mark.parametrize(("broker", "warned"), [({"type": "redis"}, True), ({"type": "sentinel"}, False)])
def test_a_sentinel_password_rotation_without_sentinels_of_ours_is_said_to_be_ignored(
    tmp_path: Path, broker: dict[str, Any], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    extra = {
        "celery-platform:rotation": {"sentinelPassword": 1},
        "celery-platform:redis": {"persistent": True},
        "celery-platform:quota": {"persistentVolumeClaims": 4},
    }
    docs = render_documents("dev", _stack(tmp_path, broker, extra))
    assert ("rotation.sentinelPassword is ignored" in caplog.text) is warned
    [secret] = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith("celery-secrets")]
    annotations = secret["metadata"].get("annotations", {})
    assert ("celery-platform/rotation.sentinelPassword" in annotations) is not warned


def test_the_docs_example_of_a_sentinel_fronted_broker_is_a_valid_stack_setting() -> None:
    from celery_platform.config.stack import parse_stack_config

    page = (ROOT / "docs" / "operations" / "external-broker.md").read_text()
    block = page.split("    celery-platform:broker:\n", 1)[1].split("\n\n", 1)[0]
    broker = yaml.safe_load("\n".join(line[6:] for line in block.splitlines()))
    config = parse_stack_config(
        {
            "image": "registry.example.com/app:1.0.0",
            "databaseUrl": "postgresql://app:pw@10.20.1.5:5432/app",
            "pools": yaml.safe_dump([{"name": "main", "queues": ["default"]}]),
            "broker": yaml.safe_dump(broker),
        }
    )
    assert config.broker.external is not None and config.broker.external.sentinel is not None
    assert config.broker.external.sentinel.master_name == "mymaster"
