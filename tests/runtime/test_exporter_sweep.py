"""The exporter returns a hard-killed worker's task to its queue after the visibility timeout, and only then.

With every pool autoscaled to zero no worker runs kombu's restore sweep, and KEDA counts the queue
lists, not kombu's ``unacked`` hash: the task would wait for unrelated traffic. The exporter runs the
same kombu sweep. Real redis-server; the "worker" is a process that takes the message without
acknowledging it and dies without cleanup, as a SIGKILL leaves it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import Celery

from celery_platform.exporter.celery_platform_exporter import restore_unacked, run_sweeps

if TYPE_CHECKING:
    from tests.runtime.conftest import RedisServer

VISIBILITY_SECONDS = 2
# Takes one message as a worker with acks_late does (kombu's QoS keeps it in `unacked`), then dies
# without closing the channel: os._exit skips the graceful close that would restore it at once.
TAKE_AND_DIE = f"""
import os, sys
from kombu import Connection
with Connection(sys.argv[1], transport_options={{"visibility_timeout": {VISIBILITY_SECONDS}}}) as conn:
    message = conn.default_channel.basic_get("default", no_ack=False)
    assert message is not None
    os._exit(0)
"""


def _app(server: RedisServer) -> Celery:
    app = Celery("sweep-test", broker=server.url())
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_SECONDS}
    return app


def _killed_with_one_task(server: RedisServer, app: Celery) -> None:
    app.send_task("sample_app.tasks.short_task", args=(1, 2), queue="default")
    subprocess.run([sys.executable, "-c", TAKE_AND_DIE, server.url()], check=True, timeout=60)
    redis = server.client()
    assert (redis.llen("default"), redis.hlen("unacked")) == (0, 1)


def test_the_sweep_restores_a_hard_killed_task_after_the_visibility_timeout_and_not_before(
    redis_server: Callable[[], RedisServer],
) -> None:
    server = redis_server()
    app = _app(server)
    _killed_with_one_task(server, app)
    redis = server.client()
    restore_unacked(app)  # younger than the timeout: a task that may still be running, left alone
    assert (redis.llen("default"), redis.hlen("unacked")) == (0, 1)
    time.sleep(VISIBILITY_SECONDS + 0.5)
    restore_unacked(app)
    assert (redis.llen("default"), redis.hlen("unacked")) == (1, 0), "back on its queue, where KEDA sees it"
    app.close()


def test_the_exporters_sweep_loop_restores_it_without_any_worker(redis_server: Callable[[], RedisServer]) -> None:
    server = redis_server()
    app = _app(server)
    _killed_with_one_task(server, app)
    stop = threading.Event()
    sweeps = threading.Thread(target=run_sweeps, args=(app, stop, 0.2), daemon=True)
    sweeps.start()
    try:
        deadline = time.monotonic() + VISIBILITY_SECONDS + 10
        while server.client().llen("default") != 1:
            assert time.monotonic() < deadline, "the sweep loop never restored the task"
            time.sleep(0.1)
    finally:
        stop.set()
        sweeps.join(timeout=5)
    assert server.client().hlen("unacked") == 0
    app.close()
