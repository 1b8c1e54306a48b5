"""What a scenario uses beside the pods: a Celery client for the rendered queues, and polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll predicate until true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def celery_client(broker_url: str, queues: Sequence[str]) -> Any:
    """A client Celery app that sends by name to ``queues`` (one direct exchange and key each, like the app)."""
    from celery import Celery
    from kombu.entity import Exchange, Queue

    client = Celery("runtime-client", broker=broker_url, backend=broker_url)
    client.conf.task_queues = [Queue(q, Exchange(q), routing_key=q) for q in queues]  # type: ignore[no-untyped-call]
    return client


def worker_queues(pod_spec: Mapping[str, Any]) -> list[str]:
    """The queues a rendered worker consumes: the value after ``-Q`` in its args."""
    args = [*(pod_spec["containers"][0].get("command") or []), *(pod_spec["containers"][0].get("args") or [])]
    return str(args[args.index("-Q") + 1]).split(",")
