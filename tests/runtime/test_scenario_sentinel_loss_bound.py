"""Loss, exactly as it is: writes acknowledged while no replica receives them are lost in a failover, and
``min-replicas-max-lag`` bounds how long the master keeps acknowledging them.

The broker is our own rendered pods (``tests/runtime/harness/sentinel.py``), the lag set through the
SentinelSpec. Redis replication is asynchronous: the master replies to an LPUSH before any replica has it. Here
the replication links are cut (a partition: bytes dropped both ways, connections left open), tasks
keep being sent, and the primary is then SIGKILLed; Sentinel promotes a replica that never saw
those writes. The test counts, from the tasks' ids on the new master's queue:

* every acknowledged send is either on the new master's queue or lost; nothing else appears there;
* every lost send was acknowledged after the cut began (minus one replica acknowledgement period,
  1 s, for the stream in flight), and no later than the master's ``min-replicas-max-lag`` allowed:
  once no replica has acknowledged for that long, the master refuses every write (NOREPLICAS), so
  after its first refusal it acknowledged nothing until the kill.

No worker runs: the queue itself is the record.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from tests.runtime.harness import wait_until
from tests.runtime.harness.failover import Sends, client_app, produce
from tests.runtime.harness.sentinel import SCENARIO_SPEC

if TYPE_CHECKING:
    from tests.runtime.harness.sentinel import SentinelCluster

MAX_LAG_SECONDS = 3
REPLICA_ACK_PERIOD_SECONDS = 1


def test_writes_acknowledged_after_the_replicas_are_cut_off_are_lost_and_only_within_the_max_lag_window(
    sentinel_cluster: Callable[..., SentinelCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    # Through the render: the lag, and a failover timeout that outlasts the test (else the Sentinels repoint
    # the replicas, which follow node 0 through their links, to its direct address).
    spec = replace(SCENARIO_SPEC, min_replicas_max_lag_seconds=MAX_LAG_SECONDS, failover_timeout_milliseconds=180_000)
    cluster = sentinel_cluster(replication_through_links=True, spec=spec)
    client = client_app(cluster)
    sends, stop = Sends(), threading.Event()
    producer = threading.Thread(target=produce, args=(client, stop, sends, 0.02, "w"), daemon=True)
    producer.start()
    time.sleep(2)
    cut_at = time.monotonic()
    cluster.partition()
    # The master acknowledges until no replica has acknowledged for max-lag seconds, then refuses.
    assert wait_until(lambda: any("NOREPLICAS" in why for why in sends.refused.values()), 30), sends.refused
    time.sleep(1)
    old = cluster.master()
    killed_at = time.monotonic()
    old.kill()
    stop.set()
    producer.join(timeout=60)
    new = cluster.wait_for_new_master(old)

    queued = [json.loads(raw)["headers"]["id"] for raw in cluster.node_client(new).lrange("default", 0, -1)]
    acknowledged = sends.acknowledged
    lost = {t for t in acknowledged if t not in set(queued)}
    refused_at = min(at for t, at in sends.refused_at.items() if "NOREPLICAS" in sends.refused[t] and at > cut_at)
    with capsys.disabled():
        last_ack = max(acknowledged.values()) - cut_at
        print(
            f"\nreplicas cut off, primary SIGKILLed {killed_at - cut_at:.1f} s later: acknowledged "
            f"{len(acknowledged)}, refused {len(sends.refused)}, lost {len(lost)} (all acknowledged within "
            f"{last_ack:.1f} s of the cut; min-replicas-max-lag {MAX_LAG_SECONDS} s); first NOREPLICAS "
            f"{refused_at - cut_at:.1f} s after the cut"
        )
    why = f"lost={sorted(lost)}\n{cluster.logs()}"
    assert len(set(queued)) == len(queued) and set(queued) <= set(acknowledged) | set(sends.refused), why
    assert lost, "writes acknowledged while no replica received them must be lost in the failover: " + why
    assert all(acknowledged[t] >= cut_at - REPLICA_ACK_PERIOD_SECONDS for t in lost), why
    # After the first refusal the master acknowledged nothing: the window closed by itself.
    assert all(at < refused_at for at in acknowledged.values() if at <= killed_at), why
    client.close()
