"""Tasks, one family per queue, that do nothing but take a known amount of time."""

from __future__ import annotations

import os
import time

from celery import Task

from sample_app.celery import app

TRACKED_STARTED = "sample_app:tracked_task:started"
TRACKED_COMPLETED = "sample_app:tracked_task:completed"


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def short_task(x: int, y: int) -> int:
    """Return x + y at once."""
    return x + y


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def urgent_task(value: str) -> str:
    """Echo value; routed to the high queue."""
    return value


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def batch_task(items: list[int]) -> int:
    """Sum items; routed to the low queue."""
    return sum(items)


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def send_email(to: str) -> str:
    """Pretend to send an email."""
    return f"sent to {to}"


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def long_task(seconds: float) -> float:
    """Sleep for seconds, standing in for a long report; returns the seconds slept."""
    time.sleep(seconds)
    return seconds


@app.task(bind=True)  # type: ignore[untyped-decorator]  # celery ships no type hints
def tracked_task(self: Task, seconds: float) -> float:
    """Sleep for seconds like long_task, recording each start and each completion in Redis lists.

    Each entry is ``<task id> <worker pid>``: with the prefork pool, the pid of the worker's main
    process (the parent of the pool child that runs the task), so that tests count how often a task
    ran, and on which worker.
    The lists live next to the results, in the result backend's Redis.
    """
    redis = self.app.backend.client
    entry = f"{self.request.id} {os.getppid()}"
    redis.rpush(TRACKED_STARTED, entry)
    time.sleep(seconds)
    redis.rpush(TRACKED_COMPLETED, entry)
    return seconds


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def process_media(seconds: float) -> float:
    """Sleep for seconds, standing in for media processing."""
    time.sleep(seconds)
    return seconds


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def deliver_webhook(url: str) -> str:
    """Pretend to deliver a webhook to url."""
    return url


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def periodic_task() -> int:
    """Run from beat; returns the worker's pid so tests can count runs per worker."""
    return os.getpid()


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def journal_task(token: str) -> str:
    """Append ``token`` to the file ``$SAMPLE_APP_JOURNAL`` names: a record of each run kept outside Redis.

    Failover tests count completed tasks here, because whatever lives in Redis can be lost with it.
    One short ``O_APPEND`` write per run, so lines from concurrent pool children never interleave.
    """
    fd = os.open(os.environ["SAMPLE_APP_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    return token


@app.task  # type: ignore[untyped-decorator]  # celery ships no type hints
def relay(task_name: str, args: list[object]) -> str:
    """Send ``task_name`` from inside the worker, routed by the worker's own app; return the sent task's id."""
    return str(app.send_task(task_name, args=args).id)


@app.task(bind=True)  # type: ignore[untyped-decorator]  # celery ships no type hints
def unrouted_task(self: Task) -> str:
    """No route names this task: it goes to task_default_queue. Returns the routing key it came with."""
    return str((self.request.delivery_info or {}).get("routing_key"))
