"""KEDA's own redis-sentinel scaler, on a pool's ScaledObject, reads through real Sentinels exactly the
backlog that real Celery queued, and keeps reading it on the promoted master after the primary's SIGKILL.

Real redis-server and redis-sentinel processes (1 primary, 2 replicas, 3 Sentinels, quorum 2, auth on
the data nodes and on the Sentinels), real Celery/kombu sends through the Sentinels, and keda-backlog
(tools/keda: KEDA's webhook checks, ``scalers.NewRedisScaler(ctx, false, true, ...)`` per trigger,
KEDA's scalingModifiers formula). The harness is tests/runtime/harness/keda_sentinel.py. The seconds
from the SIGKILL to KEDA's first correct read are printed here and measured by ``make bench``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.keda_tools import EXPECTED
from tests.runtime.harness.keda_sentinel import (
    TOTAL,
    auth_params,
    enqueue,
    kombu_sizes,
    producer,
    read,
    read_after_kill,
    replicated,
    run_keda,
    scaled_object,
    sentinel_spec,
    trigger_authentication,
)

if TYPE_CHECKING:
    from tests.runtime.harness.sentinel import SentinelCluster


def test_keda_reads_through_the_sentinels_exactly_the_backlog_kombu_queued_priorities_included(
    sentinel_cluster: Callable[..., SentinelCluster],
) -> None:
    cluster = sentinel_cluster(spec=sentinel_spec())
    so = scaled_object()
    assert {t["type"] for t in so["spec"]["triggers"]} == {"redis-sentinel"}
    refs = trigger_authentication()["spec"]["secretTargetRef"]
    assert [r["parameter"] for r in refs] == ["password", "sentinelPassword"]

    idle = read(so, cluster)
    assert idle == {
        "triggers": dict.fromkeys(EXPECTED, 0.0),
        "active": False,
        "composite": 0.0,
        "compositeActive": False,
    }

    app = producer(cluster)
    enqueue(app)
    # The lists the triggers name are the lists kombu wrote on the master: Redis agrees, list by list.
    lists = {t["name"]: t["metadata"]["listName"] for t in so["spec"]["triggers"]}
    master = cluster.client()
    assert {name: master.llen(key) for name, key in lists.items()} == EXPECTED
    holding = {os.fsdecode(k) for k in master.keys("*") if master.type(k) == b"list" and master.llen(k)}
    assert holding <= set(lists.values()), (
        f"lists holding messages that no trigger reads: {holding - set(lists.values())}"
    )
    assert kombu_sizes(app) == {"default": 9, "high": 5}

    measured = read(so, cluster)
    assert measured["triggers"] == {name: float(n) for name, n in EXPECTED.items()}
    assert measured["composite"] == TOTAL == sum(measured["triggers"].values())
    assert measured["active"] is True and measured["compositeActive"] is True
    app.close()


def test_after_a_sigkill_of_the_primary_keda_reads_the_same_backlog_on_the_promoted_master(
    sentinel_cluster: Callable[..., SentinelCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = sentinel_cluster(spec=sentinel_spec())
    so = scaled_object()
    app = producer(cluster)
    enqueue(app)
    app.close()
    assert replicated(cluster) == cluster.replicas, "every replica holds the messages before the kill"
    assert read(so, cluster)["triggers"] == {name: float(n) for name, n in EXPECTED.items()}

    after = read_after_kill(so, cluster, EXPECTED)
    with capsys.disabled():
        print(f"\nKEDA redis-sentinel after a primary SIGKILL: {after.summary()}")
    why = f"{after}\n{cluster.logs()}"
    assert after.seconds is not None and after.reading is not None, why
    assert after.reading["composite"] == TOTAL, why
    promoted = cluster.wait_for_new_master(after.killed)
    assert promoted is not after.killed and not after.killed.running(), why

    # KEDA follows the live master, not a copy: a message sent after the failover counts at once.
    app = producer(cluster)
    app.send_task("sample_app.tasks.short_task", args=(1, 2), queue="high", priority=9)
    app.close()
    assert kombu_sizes(producer(cluster)) == {"default": 9, "high": 6}
    now = read(so, cluster)
    assert now["triggers"] == {name: float(n) for name, n in {**EXPECTED, "q1p9": 1}.items()}, why
    assert now["composite"] == TOTAL + 1, why


@pytest.mark.parametrize(
    ("auth", "refusal"),
    [
        ({"sentinelPassword": "not-the-sentinel-password"}, "WRONGPASS"),
        ({"sentinelPassword": None}, "NOAUTH"),
        ({"password": "not-the-redis-password"}, "WRONGPASS"),
    ],
    ids=["wrong-sentinel-password", "no-sentinel-password", "wrong-redis-password"],
)
def test_fails_when_the_sentinel_or_redis_password_is_wrong(
    sentinel_cluster: Callable[..., SentinelCluster], auth: dict[str, str | None], refusal: str
) -> None:
    cluster = sentinel_cluster(spec=sentinel_spec())
    given = {key: value for key, value in {**auth_params(cluster), **auth}.items() if value is not None}
    done = run_keda(scaled_object(), cluster, given)
    assert done.returncode == 1, done.stdout
    assert "q0p0" in done.stderr and refusal in done.stderr, done.stderr
    assert done.stdout == ""
    for secret in given.values():
        assert secret not in done.stderr, "KEDA's error shows no password"
