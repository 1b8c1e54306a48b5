"""The Celery app: eight queues, routes, a periodic task and Redis results."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from sample_app import settings

_settings = settings.load()

app = Celery("sample_app", include=["sample_app.tasks"])
app.conf.update(
    broker_url=_settings.broker_url,
    result_backend=_settings.result_backend,
    # Explicit, because Celery 5 warns that the implicit default will change; the platform wants
    # a worker that waits for its broker rather than one that crash-loops while Redis starts.
    broker_connection_retry_on_startup=True,
    # Above the longest task, or Redis redelivers a task that is still running.
    broker_transport_options={"visibility_timeout": _settings.visibility_timeout_seconds},
    task_acks_late=_settings.task_acks_late,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=_settings.worker_prefetch_multiplier,
    # Each queue gets its own exchange and routing key; a bare Queue(name) would share the default
    # exchange and routing key, so one message could land in several queues.
    task_queues=[
        Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]
        for name in settings.QUEUES
    ],
    task_default_queue="default",
    task_routes={
        "sample_app.tasks.short_task": {"queue": "default"},
        "sample_app.tasks.urgent_task": {"queue": "high"},
        "sample_app.tasks.batch_task": {"queue": "low"},
        "sample_app.tasks.send_email": {"queue": "email"},
        "sample_app.tasks.long_task": {"queue": "reports"},
        "sample_app.tasks.tracked_task": {"queue": "reports"},
        "sample_app.tasks.process_media": {"queue": "media"},
        "sample_app.tasks.deliver_webhook": {"queue": "webhooks"},
        "sample_app.tasks.periodic_task": {"queue": "maintenance"},
    },
    beat_schedule={
        "periodic-task": {"task": "sample_app.tasks.periodic_task", "schedule": _settings.periodic_seconds},
    },
    result_expires=3600,
    task_track_started=True,
)
