"""KEDA's own redis scaler and scalingModifiers formula, run on a worker pool's ScaledObject, count
exactly the messages that real Celery left in a real Redis: every kombu priority sub-list, once.

The oracle is keda-backlog (tools/keda, built from github.com/kedacore/keda/v2): KEDA's webhook checks,
``scalers.NewRedisScaler`` per trigger and ``modifiers.HandleScalingModifiers`` for the formula. The
ScaledObject is our render's: the dev stack with its ``main`` pool autoscaled on ``default`` and ``high``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from celery import Celery
from kombu.entity import Exchange, Queue

from tests.keda_tools import EXPECTED, QUEUES, SENT, SEP, backlog, keda_backlog
from tests.runtime.harness.render import render_stack_file

if TYPE_CHECKING:
    from tests.runtime.conftest import RedisServer

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _rendered_scaled_object() -> str:
    """The dev stack rendered with pool ``main`` autoscaled on (default, high); its ScaledObject as YAML."""
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    pools = document["config"]["celery-platform:pools"]
    main, other = pools[0], pools[1]
    other["queues"] = [q for q in main["queues"] if q not in QUEUES] + other["queues"]
    main["queues"] = list(QUEUES)
    del main["replicas"]
    main["autoscaling"] = {"minReplicas": 0, "maxReplicas": 5}
    docs = render_stack_file("dev", document)
    [scaled] = [d for d in docs if d["kind"] == "ScaledObject" and d["spec"]["scaleTargetRef"]["name"] == "celery-main"]
    return yaml.safe_dump(scaled)


def scaled_object() -> dict[str, Any]:
    """A fresh copy of the rendered ScaledObject (tests change it)."""
    doc: dict[str, Any] = yaml.safe_load(_rendered_scaled_object())
    return doc


def client_app(server: RedisServer) -> Celery:
    """A producer with the sample app's broker settings (kombu's default priority steps)."""
    app = Celery("keda-backlog-client", broker=server.url())
    app.conf.task_queues = [Queue(q, Exchange(q), routing_key=q) for q in QUEUES]  # type: ignore[no-untyped-call]
    return app


def kombu_sizes(app: Celery) -> dict[str, int]:
    """Each queue's size as kombu reports it (passive declare: LLEN summed over its priority lists)."""
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        return {q: channel.queue_declare(q, passive=True).message_count for q in QUEUES}


def test_keda_counts_every_message_of_both_queues_once_across_the_priority_sub_lists(
    redis_server: Callable[[], RedisServer],
) -> None:
    server = redis_server()
    so = scaled_object()
    address = f"127.0.0.1:{server.port}"

    idle = backlog(so, server.password, address)
    assert idle == {
        "triggers": dict.fromkeys(EXPECTED, 0.0),
        "active": False,
        "composite": 0.0,
        "compositeActive": False,
    }

    app = client_app(server)
    for queue, priority, count in SENT:
        for _ in range(count):
            options = {} if priority is None else {"priority": priority}
            app.send_task("sample_app.tasks.short_task", args=(1, 2), queue=queue, **options)
    total = sum(count for _, _, count in SENT)

    # The lists the render names are the lists kombu wrote: Redis itself agrees, list by list.
    lists = {t["name"]: t["metadata"]["listName"] for t in so["spec"]["triggers"]}
    redis = server.client()
    assert {name: redis.llen(key) for name, key in lists.items()} == EXPECTED
    holding = {os.fsdecode(k) for k in redis.keys("*") if redis.type(k) == b"list" and redis.llen(k)}
    assert holding <= set(lists.values()), (
        f"lists holding messages that no trigger reads: {holding - set(lists.values())}"
    )
    assert kombu_sizes(app) == {"default": 9, "high": 5}

    measured = backlog(so, server.password, address)
    assert measured["triggers"] == {name: float(n) for name, n in EXPECTED.items()}
    assert measured["composite"] == total == sum(measured["triggers"].values())
    assert measured["active"] is True
    assert measured["compositeActive"] is True
    app.close()


def test_keda_reads_a_sub_list_by_its_exact_name_with_the_control_characters(
    redis_server: Callable[[], RedisServer],
) -> None:
    server = redis_server()
    so = scaled_object()
    server.client().lpush(f"high{SEP}3", "m1", "m2")
    server.client().lpush("high\\x06\\x163", "escaped-name-is-another-list")

    measured = backlog(so, server.password, f"127.0.0.1:{server.port}")
    assert measured["triggers"]["q1p3"] == 2.0
    assert measured["composite"] == 2.0


def test_fails_when_the_formula_names_a_trigger_that_the_scaled_object_does_not_define(
    redis_server: Callable[[], RedisServer],
) -> None:
    server = redis_server()
    so = scaled_object()
    so["spec"]["triggers"] = [t for t in so["spec"]["triggers"] if t["name"] != "q1p9"]

    done = keda_backlog(
        {
            "scaledObject": so,
            "authParams": {"password": server.password},
            "metadataOverrides": {"address": "127.0.0.1:1"},
        }
    )
    assert done.returncode == 1
    assert "scalingModifiers" in done.stderr and "q1p9" in done.stderr, done.stderr


def test_fails_when_the_broker_password_is_wrong(redis_server: Callable[[], RedisServer]) -> None:
    server = redis_server()
    done = keda_backlog(
        {
            "scaledObject": scaled_object(),
            "authParams": {"password": "not-" + server.password},
            "metadataOverrides": {"address": f"127.0.0.1:{server.port}"},
        }
    )
    assert done.returncode == 1
    assert "q0p0" in done.stderr and "WRONGPASS" in done.stderr, done.stderr
