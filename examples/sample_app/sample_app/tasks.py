"""Tasks, one family per queue, that do nothing but take a known amount of time."""

from __future__ import annotations

import os
import time

from sample_app.celery import app


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
