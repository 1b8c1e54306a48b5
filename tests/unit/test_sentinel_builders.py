"""The Sentinel client env and wait-for-broker container: secrets by reference, every Sentinel named."""

from __future__ import annotations

import pytest

from celery_platform.builders.sentinel import wait_for_sentinel_broker
from celery_platform.config.broker import SentinelClient
from celery_platform.config.specs import pod_resources

RESOURCES = pod_resources("10m", "16Mi", "50m", "32Mi")


def build(sentinels: list[str]) -> dict[str, object]:
    return wait_for_sentinel_broker(
        redis_image="redis:7.2.7",
        client=SentinelClient(
            master_name="celery", addresses=tuple(sentinels), password=("broker", "SENTINEL_PASSWORD")
        ),
        url_secret="broker",
        url_key="CELERY_BROKER_URL",
        resources=RESOURCES,
    )


def test_the_init_container_reads_both_passwords_from_secrets_and_names_every_sentinel() -> None:
    container = build(["s-0.sentinel:26379", "s-1.sentinel:26379", "s-2.sentinel:26379"])
    env = {e["name"]: e for e in container["env"]}  # type: ignore[attr-defined]
    assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {"name": "broker", "key": "CELERY_BROKER_URL"}
    assert env["CELERY_BROKER_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "SENTINEL_PASSWORD"
    assert env["CELERY_BROKER_SENTINEL_MASTER"]["value"] == "celery"
    assert env["BROKER_SENTINELS"]["value"] == "s-0.sentinel:26379 s-1.sentinel:26379 s-2.sentinel:26379"
    assert container["resources"] == RESOURCES.to_k8s()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # type: ignore[index]


def test_fails_when_no_sentinel_is_given() -> None:
    with pytest.raises(ValueError, match="at least one Sentinel"):
        build([])
