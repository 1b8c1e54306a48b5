"""The consumer check of the hooks and the exporter's event folding, on stand-ins: no broker, no worker."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from celery import Celery
from celery.events import Event
from prometheus_client import CollectorRegistry

from celery_platform.exporter.celery_platform_exporter import CONSUMING_EVENT, Exporter, pool_of
from celery_platform.hooks import celery_platform_hooks as hooks


class FakeConsumer:
    """A kombu Consumer's consuming state: the queues it holds tags for, and what the channel polls."""

    def __init__(self, tagged: list[str], polled: list[str] | None) -> None:
        self.queues = [SimpleNamespace(name=q) for q in tagged]
        self.tagged = set(tagged)
        self.channel = SimpleNamespace(_active_queues=polled) if polled is not None else SimpleNamespace()

    def consuming_from(self, queue: Any) -> bool:
        return getattr(queue, "name", queue) in self.tagged


def worker(consumer: FakeConsumer | None) -> Any:
    return SimpleNamespace(consumer=SimpleNamespace(task_consumer=consumer))


def test_a_worker_consuming_every_queue_misses_none() -> None:
    w = worker(FakeConsumer(["a", "b"], ["a", "b"]))
    assert hooks.missing_queues(w, frozenset({"a", "b"})) == []
    assert hooks.consumed_queues(w) == ["a", "b"]


def test_a_cancelled_queue_and_a_queue_no_longer_polled_are_missing() -> None:
    assert hooks.missing_queues(worker(FakeConsumer(["a"], ["a"])), frozenset({"a", "b"})) == ["b"]
    assert hooks.missing_queues(worker(FakeConsumer(["a", "b"], ["a"])), frozenset({"a", "b"})) == ["b"]


def test_a_worker_without_a_task_consumer_misses_every_queue() -> None:
    assert hooks.missing_queues(worker(None), frozenset({"b", "a"})) == ["a", "b"]


def test_a_transport_without_a_polled_list_relies_on_the_consumer_tags() -> None:
    assert hooks.missing_queues(worker(FakeConsumer(["a"], None)), frozenset({"a"})) == []


def test_the_step_removes_the_ready_file_and_stops_the_heartbeat_when_a_queue_is_missing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    heartbeat, ready = tmp_path / "hb", tmp_path / "ready"
    monkeypatch.setenv(hooks.HEARTBEAT_ENV, str(heartbeat))
    monkeypatch.setenv(hooks.READY_ENV, str(ready))
    consumer = FakeConsumer(["a", "b"], ["a", "b"])
    parent = worker(consumer)
    step = hooks.HeartbeatStep(parent)
    step.expected, step.worker_is_ready = frozenset({"a", "b"}), True
    assert step.check() and heartbeat.exists() and ready.exists()
    consumer.tagged.discard("b")
    before = heartbeat.stat().st_mtime_ns
    time.sleep(0.01)
    assert not step.check()
    assert not ready.exists() and heartbeat.stat().st_mtime_ns == before


def events(exporter: Exporter, *items: dict[str, Any]) -> None:
    """Feed events as the receiver hands them over (the dispatcher adds the Lamport clock)."""
    for clock, item in enumerate(items, start=1):
        exporter.on_event({**item, "clock": clock, "local_received": time.time()})


def test_the_exporter_counts_tasks_per_name_and_outcome_and_workers_per_pool() -> None:
    registry = CollectorRegistry()
    exporter = Exporter(Celery("t", broker="memory://"), ["default", "email"], registry)
    exporter.queue_depths = lambda: {"default": 3, "email": 0}  # type: ignore[method-assign]
    host = "main@celery-main-abc"
    events(
        exporter,
        Event("worker-online", hostname=host, freq=2.0),
        Event("worker-heartbeat", hostname=host, freq=2.0, active=1, processed=0),
        Event(CONSUMING_EVENT, hostname=host, queues=["default"]),
        Event("task-received", uuid="1", name="app.add", hostname=host),
        Event("task-started", uuid="1", hostname=host),
        Event("task-succeeded", uuid="1", hostname=host, runtime=0.5, result="2"),
        Event("task-received", uuid="2", name="app.add", hostname=host),
        Event("task-failed", uuid="2", hostname=host, exception="boom"),
        Event("task-received", uuid="3", name="app.slow", hostname=host),
        Event("task-started", uuid="3", hostname=host),
        Event("task-received", uuid="4", name="app.slow", hostname=host),
        Event("task-sent", uuid="5", name="app.add", routing_key="email", queue="email", hostname="gen@client"),
    )
    get = registry.get_sample_value
    assert get("celery_tasks_total", {"task": "app.add", "state": "succeeded"}) == 1
    assert get("celery_tasks_total", {"task": "app.add", "state": "failed"}) == 1
    assert get("celery_task_runtime_seconds_count", {"task": "app.add"}) == 1
    assert get("celery_queue_messages", {"queue": "default"}) == 3
    assert get("celery_queue_consumers", {"queue": "default"}) == 1
    assert get("celery_queue_consumers", {"queue": "email"}) == 0
    assert get("celery_workers_online", {"pool": "main"}) == 1
    assert get("celery_pool_tasks_active", {"pool": "main"}) == 1
    assert get("celery_pool_tasks_reserved", {"pool": "main"}) == 1
    assert get("celery_queue_oldest_message_age_seconds", {"queue": "email"}) is not None
    assert get("celery_beat_last_tick_timestamp_seconds") is None, "no beat tick seen yet"
    events(exporter, Event("beat-tick", hostname="beat@x"))
    assert get("celery_beat_last_tick_timestamp_seconds") is not None


def test_a_worker_that_went_offline_no_longer_counts_as_a_consumer() -> None:
    registry = CollectorRegistry()
    exporter = Exporter(Celery("t", broker="memory://"), ["default"], registry)
    exporter.queue_depths = lambda: {"default": 0}  # type: ignore[method-assign]
    host = "io@p"
    events(
        exporter,
        Event("worker-heartbeat", hostname=host, freq=2.0, active=0, processed=0),
        Event(CONSUMING_EVENT, hostname=host, queues=["default"]),
    )
    assert registry.get_sample_value("celery_queue_consumers", {"queue": "default"}) == 1
    events(exporter, Event("worker-offline", hostname=host))
    assert registry.get_sample_value("celery_queue_consumers", {"queue": "default"}) == 0


def test_a_worker_is_counted_in_the_pool_its_name_starts_with() -> None:
    assert pool_of("main@celery-main-7d9-x") == "main"
    assert pool_of("celery-main-7d9-x") == "celery-main-7d9-x"
