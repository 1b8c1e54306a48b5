"""Prometheus metrics for a Celery platform, from Celery's events API, kombu and prometheus-client.

Shipped in a ConfigMap like the hooks module and run as ``python -m celery_platform_exporter`` in an
image that has the app's Celery, kombu and ``prometheus-client``. Nothing here speaks a broker
protocol or writes the exposition format by hand:

* Queue depth: kombu's passive ``queue_declare`` per queue, on a connection of the app's broker.
  For Redis it returns ``Channel._size(queue)``, which sums ``LLEN`` over the priority sub-lists,
  named by ``Channel._q_for_pri``: ``f"{queue}{sep}{pri}"`` with ``sep = '\\x06\\x16'`` for each of
  ``PRIORITY_STEPS = [0, 3, 6, 9]``, the bare name for priority 0 (kombu 5.7,
  ``kombu/transport/redis.py``). So messages sent with a priority are counted too.
* Everything else: Celery's event stream (``app.events.Receiver`` into ``celery.events.state.State``).
  The workers run with ``--task-events`` (``-E``); the hooks module adds two events of its own,
  sent through Celery's event dispatcher: ``worker-consuming`` (the queues a worker holds an active
  consumer for, on change and every few seconds) and ``beat-tick`` (each pass of beat's loop).
* Redelivery with every worker gone: kombu puts the task of a worker killed hard (SIGKILL, node loss)
  back on its queue only from a running consumer's ``QoS.restore_visible`` sweep, once it is older
  than the visibility timeout. A pool that KEDA scaled to zero has no consumer, and KEDA counts the
  queue lists, not kombu's ``unacked`` hash, so nothing would wake it. With
  ``CELERY_VISIBILITY_TIMEOUT_SECONDS`` set (the workers' value), the exporter runs that same kombu
  sweep every ``SWEEP_SECONDS``: the task reappears in its list, and KEDA scales the pool up for it.
* The time the oldest message has waited: only measurable when producers send ``task-sent`` events
  (``task_send_sent_event = True``): the age of the oldest task sent and not yet received. Without
  them the series is absent and its alert stays quiet.

Workers are named ``<pool>@<host>`` (``-n``), which is how a worker is counted in its pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import Celery
from celery.events.state import State
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["BEAT_TICK_EVENT", "CONSUMING_EVENT", "Exporter", "main", "pool_of", "restore_unacked", "run_sweeps"]

BROKER_ENV = "CELERY_BROKER_URL"
QUEUES_ENV = "CELERY_PLATFORM_EXPORTER_QUEUES"
PORT_ENV = "CELERY_PLATFORM_EXPORTER_PORT"
VISIBILITY_ENV = "CELERY_VISIBILITY_TIMEOUT_SECONDS"
#: A Sentinel-fronted broker: the master's name and the Sentinels' password (the URL lists the Sentinels).
SENTINEL_MASTER_ENV = "CELERY_BROKER_SENTINEL_MASTER"
SENTINEL_PASSWORD_ENV = "CELERY_BROKER_SENTINEL_PASSWORD"
#: How often the exporter runs kombu's restore sweep (kombu's workers: about every 100 s).
SWEEP_SECONDS = 30.0
CONSUMING_EVENT = "worker-consuming"
BEAT_TICK_EVENT = "beat-tick"
#: A worker's ``worker-consuming`` report counts for this long (the hooks resend every 5 s).
CONSUMING_VALID_SECONDS = 20.0
#: The event loop must have turned this recently for /livez and /readyz to pass.
LOOP_MAX_AGE_SECONDS = 60.0
RUNTIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
TASK_STATES = {
    "task-succeeded": "succeeded",
    "task-failed": "failed",
    "task-retried": "retried",
    "task-rejected": "rejected",
}

logger = logging.getLogger("celery_platform_exporter")


def pool_of(hostname: str) -> str:
    """Return the pool of a worker named ``<pool>@<host>``; a worker named otherwise is its own pool."""
    return hostname.split("@", 1)[0] if "@" in hostname else hostname


class Exporter(Collector):
    """Keeps Celery's event state and turns it, and the queues' depth, into Prometheus metrics."""

    def __init__(self, app: Celery, queues: Iterable[str], registry: CollectorRegistry) -> None:
        self.app = app
        self.queues = sorted(set(queues))
        self.state = State()
        self.lock = threading.Lock()
        self.consuming: dict[str, tuple[float, frozenset[str]]] = {}
        self.beat_tick: float | None = None
        self.loop_turned_at = time.monotonic()
        self.connected = False
        self._depth_connection: Any = None
        self.tasks = Counter(
            "celery_tasks", "Tasks that finished, by task name and outcome.", ["task", "state"], registry=registry
        )
        self.runtime = Histogram(
            "celery_task_runtime_seconds",
            "Runtime of succeeded tasks, by task name.",
            ["task"],
            buckets=RUNTIME_BUCKETS,
            registry=registry,
        )
        self.up = Gauge(
            "celery_exporter_broker_connected", "1 while the event receiver is connected.", registry=registry
        )
        registry.register(self)

    # -- events -------------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """Fold one Celery event into the state and the counters."""
        kind = event.get("type", "")
        with self.lock:
            self.loop_turned_at = time.monotonic()
            if kind == CONSUMING_EVENT:
                self.consuming[event["hostname"]] = (time.monotonic(), frozenset(event.get("queues") or ()))
                return
            if kind == BEAT_TICK_EVENT:
                self.beat_tick = float(event.get("timestamp") or time.time())
                return
            self.state.event(event)
            if kind == "worker-offline":
                self.consuming.pop(event.get("hostname", ""), None)
            outcome = TASK_STATES.get(kind)
            if outcome is None:
                return
            task = self.state.tasks.get(event.get("uuid"))
            name = (task.name if task is not None else None) or "unknown"
            self.tasks.labels(name, outcome).inc()
            if outcome == "succeeded" and event.get("runtime") is not None:
                self.runtime.labels(name).observe(float(event["runtime"]))

    def run_events(self, stop: threading.Event) -> None:
        """Receive events until ``stop`` is set, reconnecting with back-off after a broker error."""
        delay = 1.0
        while not stop.is_set():
            try:
                with self.app.connection_for_read() as connection:
                    receiver = self.app.events.Receiver(connection, handlers={"*": self.on_event})
                    # kombu's ConsumerMixin calls on_iteration once per drain (at least every second)
                    # and checks should_stop before each: the loop's own pulse, events or not.
                    receiver.on_iteration = self._turned
                    receiver.should_stop = False
                    stop_watch = threading.Thread(target=self._stop_when, args=(stop, receiver), daemon=True)
                    stop_watch.start()
                    self.connected = True
                    self.up.set(1)
                    delay = 1.0
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as exc:
                # Logged, not hidden: /readyz turns unready while disconnected, and the loop retries.
                logger.warning("celery_platform_exporter: event receiver lost the broker: %r", exc)
            self.connected = False
            self.up.set(0)
            stop.wait(delay)
            self._turned()
            delay = min(delay * 2, 30.0)

    def _turned(self) -> None:
        self.loop_turned_at = time.monotonic()

    @staticmethod
    def _stop_when(stop: threading.Event, receiver: Any) -> None:
        stop.wait()
        receiver.should_stop = True

    # -- scrape -------------------------------------------------------------------------------------

    def queue_depths(self) -> dict[str, int]:
        """Return each queue's waiting messages (priority sub-lists included), from kombu."""
        from kombu.entity import Queue
        from kombu.exceptions import ChannelError

        if self._depth_connection is None:
            self._depth_connection = self.app.connection_for_read()
        channel = self._depth_connection.default_channel
        depths = {}
        for name in self.queues:
            try:
                declared = Queue(name, channel=channel).queue_declare(passive=True)  # type: ignore[no-untyped-call]
                depths[name] = int(declared.message_count)
            except ChannelError:
                # A passive declare of a queue that has never held a message: nothing waits there.
                depths[name] = 0
        return depths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges computed at scrape time (prometheus-client calls this per scrape)."""
        messages = GaugeMetricFamily("celery_queue_messages", "Messages waiting in a queue.", labels=["queue"])
        try:
            depths = self.queue_depths()
        except Exception as exc:
            logger.warning("celery_platform_exporter: cannot read queue depths: %r", exc)
            self._depth_connection = None
            depths = {}
        for name, depth in depths.items():
            messages.add_metric([name], depth)
        yield messages

        now_mono, now = time.monotonic(), time.time()
        with self.lock:
            alive = {w.hostname for w in self.state.workers.values() if w.alive}
            consumers = GaugeMetricFamily(
                "celery_queue_consumers", "Live workers holding an active consumer for a queue.", labels=["queue"]
            )
            counts: dict[str, int] = dict.fromkeys(self.queues, 0)
            for consumer_host, (seen, queues) in self.consuming.items():
                if consumer_host in alive and now_mono - seen <= CONSUMING_VALID_SECONDS:
                    for q in queues:
                        counts[q] = counts.get(q, 0) + 1
            for q, n in sorted(counts.items()):
                consumers.add_metric([q], n)
            yield consumers

            online = GaugeMetricFamily("celery_workers_online", "Workers online, by pool.", labels=["pool"])
            active = GaugeMetricFamily("celery_pool_tasks_active", "Tasks running, by pool.", labels=["pool"])
            reserved = GaugeMetricFamily(
                "celery_pool_tasks_reserved", "Tasks received and waiting for a child, by pool.", labels=["pool"]
            )
            per_pool: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
            for hostname in alive:
                per_pool[pool_of(hostname)][0] += 1
            oldest: dict[str, float] = {}
            for task in self.state.tasks.values():
                host: str | None = task.worker.hostname if task.worker is not None else None
                if host is not None and host in alive and task.state == "STARTED":
                    per_pool[pool_of(host)][1] += 1
                elif host is not None and host in alive and task.state == "RECEIVED":
                    per_pool[pool_of(host)][2] += 1
                elif task.state == "PENDING" and task.sent:
                    queue = task.routing_key or getattr(task, "queue", None) or "unknown"
                    oldest[queue] = max(oldest.get(queue, 0.0), now - float(task.sent))
            for pool, (n_online, n_active, n_reserved) in sorted(per_pool.items()):
                online.add_metric([pool], n_online)
                active.add_metric([pool], n_active)
                reserved.add_metric([pool], n_reserved)
            yield online
            yield active
            yield reserved

            age = GaugeMetricFamily(
                "celery_queue_oldest_message_age_seconds",
                "Age of the oldest task sent to a queue and not yet received (needs task-sent events).",
                labels=["queue"],
            )
            for q, seconds in sorted(oldest.items()):
                age.add_metric([q], seconds)
            yield age

            if self.beat_tick is not None:
                yield GaugeMetricFamily(
                    "celery_beat_last_tick_timestamp_seconds", "When beat last ran its loop.", value=self.beat_tick
                )

    def live(self) -> bool:
        """Whether the event loop turned recently (connected, or backing off between reconnects)."""
        return time.monotonic() - self.loop_turned_at <= LOOP_MAX_AGE_SECONDS

    def ready(self) -> bool:
        """Whether the event receiver is connected and its loop turned recently."""
        return self.connected and self.live()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
        """Log nothing per request: probes and scrapes would flood the container log."""


def wsgi_app(exporter: Exporter, registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """Return the WSGI app: ``/livez`` and ``/readyz`` for the probes, everything else prometheus-client's."""
    metrics = make_wsgi_app(registry)
    checks = {"/livez": exporter.live, "/readyz": exporter.ready}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is not None:
            ok = check()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"event receiver not connected or its loop stalled\n"]
        body: Iterable[bytes] = metrics(environ, start_response)
        return body

    return app


def restore_unacked(app: Celery) -> None:
    """Put back on their queues the unacknowledged messages older than the app's visibility timeout.

    kombu's own sweep (``QoS.restore_visible``, under kombu's mutex, so it never races a worker's), with
    no throttle: the caller paces it. A message younger than the timeout is a running task: untouched.
    """
    with app.connection_for_write() as conn:
        conn.default_channel.qos.restore_visible(num=1000, interval=1)


def run_sweeps(app: Celery, stop: threading.Event, every: float = SWEEP_SECONDS) -> None:
    """Call ``restore_unacked`` every ``every`` seconds until ``stop``; a broker error waits for the next."""
    while not stop.wait(every):
        try:
            restore_unacked(app)
        except Exception:  # a broker outage: the event loop's readiness reports it; try again later
            logger.warning("celery_platform_exporter: the unacked sweep failed; retrying", exc_info=True)


def transport_options(visibility: str) -> dict[str, Any]:
    """The broker's transport options: the workers' visibility timeout, and Sentinel's master and password.

    With Sentinel, every connection (the event receiver's, the queue-depth and sweep ones) asks the
    Sentinels for the current master, so after a failover a reconnect finds the promoted replica.
    """
    options: dict[str, Any] = {}
    if visibility:
        options["visibility_timeout"] = int(visibility)
    master = os.environ.get(SENTINEL_MASTER_ENV, "").strip()
    if master:
        options["master_name"] = master
        if os.environ.get(SENTINEL_PASSWORD_ENV):
            options["sentinel_kwargs"] = {"password": os.environ[SENTINEL_PASSWORD_ENV]}
    return options


def main() -> None:
    """Run the exporter: the event receiver in a thread, the HTTP server in the main thread."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s] %(message)s")
    queues = [q.strip() for q in os.environ.get(QUEUES_ENV, "").split(",") if q.strip()]
    if not queues:
        raise SystemExit(f"celery_platform_exporter: {QUEUES_ENV} is empty; set it to the queues to measure")
    broker = os.environ.get(BROKER_ENV, "")
    if not broker:
        raise SystemExit(f"celery_platform_exporter: {BROKER_ENV} is unset")
    port = int(os.environ.get(PORT_ENV, "9808"))
    app = Celery("celery_platform_exporter", broker=broker)
    app.conf.broker_connection_retry_on_startup = True
    visibility = os.environ.get(VISIBILITY_ENV, "")
    app.conf.broker_transport_options = transport_options(visibility)
    registry = CollectorRegistry()
    exporter = Exporter(app, queues, registry)
    stop = threading.Event()
    threading.Thread(target=exporter.run_events, args=(stop,), name="events", daemon=True).start()
    if visibility:
        threading.Thread(target=run_sweeps, args=(app, stop), name="sweeps", daemon=True).start()
    server = make_server("", port, wsgi_app(exporter, registry), _ThreadingWSGIServer, handler_class=_QuietHandler)
    logger.info("celery_platform_exporter: serving /metrics, /livez and /readyz on :%d for %s", port, ", ".join(queues))
    try:
        server.serve_forever()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
