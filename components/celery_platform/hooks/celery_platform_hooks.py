"""Heartbeat and ready files that give Celery workers and beat cheap, meaningful Kubernetes probes.

This module is shipped in a ConfigMap, mounted at ``/etc/celery-platform/hooks`` and put on
``PYTHONPATH``. It needs only the standard library and Celery, and the probes that read its files
need only ``sh``, ``test``, ``stat`` and ``date``: no Python start-up, no broker round trip.

Worker (``celery -A <app> worker --include celery_platform_hooks ...``)
    ``--include`` imports this module in ``WorkController.setup_includes()``, which runs before
    ``worker_init`` is sent and before the worker blueprint is built from ``app.steps['worker']``
    (Celery 5.7, ``celery/worker/worker.py``). The ``worker_init`` handler below therefore still has
    time to add :class:`HeartbeatStep` to the blueprint of the very app the worker runs.

    * :class:`HeartbeatStep` requires the worker Timer and touches ``$CELERY_PLATFORM_HEARTBEAT_FILE``
      every second with ``w.timer.call_repeatedly``. With the prefork pool and Redis the Timer is
      driven by the worker's event loop, so a fresh file proves that the loop which reads from the
      broker and hands tasks to the pool is turning. Busy pool children do not stop it; a frozen or
      wedged main process does, and so does a lost broker: while the consumer reconnects (kombu
      backs off 2, 4, 6 ... up to 30 s between attempts) the loop does not turn. A 10 s Redis outage
      measured as an 11-13 s heartbeat gap (Celery 5.7, tests/runtime/test_hooks_broker_outage.py),
      so the liveness max age must cover the broker outages to be ridden out, plus 30 s.
    * Health means consuming. On the same Timer tick, :class:`HeartbeatStep` reads Celery's own
      consumer state, in memory and without a broker round trip: the worker's kombu task consumer
      (``worker.consumer.task_consumer``) must hold a consumer tag for every queue the worker was
      started with (``Consumer.consuming_from``), and for the Redis transport the channel must still
      poll it (``channel._active_queues``, what BRPOP listens on). Only then is the heartbeat
      touched and the ready file kept; a queue without an active consumer (``celery control
      cancel_consumer``, a consumer that did not come back after a reconnect) removes the ready file
      at once and lets the heartbeat go stale, so readiness fails within one probe window and
      liveness restarts the container after ``heartbeatMaxAgeSeconds``.
    * ``worker_ready`` creates ``$CELERY_PLATFORM_READY_FILE`` when the worker consumes every queue
      (the consumer has just started them); ``worker_shutdown`` removes it and stops the heartbeat.
    * ``worker_init`` removes both files first: an emptyDir outlives a container restart, and a ready
      file left by a crashed container would let the next one pass its startup probe at once.

Beat (``celery -A celery_platform_hooks:app beat ...`` with ``CELERY_PLATFORM_APP=<the user's -A>``)
    ``celery beat`` has no ``--include``, so this module is the ``-A`` target: its ``app`` attribute
    resolves ``$CELERY_PLATFORM_APP`` with Celery's own ``find_app`` (what ``-A`` would have done), so
    the app, its loader, its config and its scheduler class stay the user's. Resolving it connects
    ``beat_init``, whose handler wraps the ``tick`` of that one scheduler instance so that each pass of
    the scheduling loop touches ``$CELERY_PLATFORM_HEARTBEAT_FILE``. The alternatives weighed (the
    schedule file's mtime, ``celery inspect ping``, ``--loader``, ``sitecustomize``) and why each was
    refused are in docs/hooks.md.

Sentinel (a ``sentinel://`` broker URL: ``broker.type: sentinel``, or an external Sentinel-fronted broker)
    The URL lists every Sentinel, but kombu and Celery's result backend also need the master's name
    and the Sentinels' own password, which only transport options carry (``master_name``,
    ``sentinel_kwargs``). They come as ``$CELERY_BROKER_SENTINEL_MASTER`` and
    ``$CELERY_BROKER_SENTINEL_PASSWORD``; :func:`apply_sentinel_options` adds them to the app's
    ``broker_transport_options`` (and ``result_backend_transport_options`` for a ``sentinel://``
    result backend) before any connection: in ``worker_init``, or when beat loads the user's app.
    Options the app sets itself win. After a failover, the reconnect asks the Sentinels again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from celery import bootsteps, signals

__all__ = [
    "APP_ENV",
    "BEAT_TICK_EVENT",
    "CONSUMING_EVENT",
    "HEARTBEAT_ENV",
    "READY_ENV",
    "SENTINEL_MASTER_ENV",
    "SENTINEL_PASSWORD_ENV",
    "SOFT_SHUTDOWN_ENV",
    "HeartbeatStep",
    "apply_sentinel_options",
    "configure_soft_shutdown",
    "consumed_queues",
    "install_beat_heartbeat",
    "missing_queues",
]

HEARTBEAT_ENV = "CELERY_PLATFORM_HEARTBEAT_FILE"
READY_ENV = "CELERY_PLATFORM_READY_FILE"
APP_ENV = "CELERY_PLATFORM_APP"
SENTINEL_MASTER_ENV = "CELERY_BROKER_SENTINEL_MASTER"
SENTINEL_PASSWORD_ENV = "CELERY_BROKER_SENTINEL_PASSWORD"
SOFT_SHUTDOWN_ENV = "CELERY_PLATFORM_SOFT_SHUTDOWN_SECONDS"
ROUTES_ENV = "CELERY_PLATFORM_TASK_ROUTES"
HEARTBEAT_INTERVAL_SECONDS = 1.0
#: Events for celery_platform_exporter, sent through Celery's own event dispatcher.
CONSUMING_EVENT = "worker-consuming"
BEAT_TICK_EVENT = "beat-tick"
CONSUMING_EVENT_EVERY_SECONDS = 5.0

logger = logging.getLogger("celery_platform_hooks")


def _path_from_env(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


class _Toucher:
    """Touches one file, logging a failure once per streak instead of once a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = False

    def touch(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError as exc:
            # Not raised: a stale heartbeat already makes the liveness probe fail, which is the
            # right outcome, and an exception would only be swallowed by the timer anyway.
            if not self._failing:
                logger.error("celery_platform_hooks: cannot touch %s: %r", self.path, exc)
            self._failing = True
        else:
            if self._failing:
                logger.warning("celery_platform_hooks: touching %s works again", self.path)
            self._failing = False


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def install_task_routes(app: Any) -> dict[str, str]:
    """Put ``$CELERY_PLATFORM_TASK_ROUTES`` (the stack's ``taskRoutes``) before the app's ``task_routes``: they win
    for the tasks they name (a ``queue=`` when sending still wins); a second call replaces them."""
    try:
        routes = json.loads(os.environ.get(ROUTES_ENV, "").strip() or "{}")
        if not isinstance(routes, dict) or not all(isinstance(v, str) for v in routes.values()):
            raise ValueError("not an object of task name to queue name")
    except ValueError as exc:  # rendered by the platform: a bad value is a bug to see at start, not a misroute
        raise RuntimeError(f"celery_platform_hooks: {ROUTES_ENV} is not valid: {exc}") from exc
    if routes:
        own, previous = app.conf.task_routes, getattr(app, "_celery_platform_routes", None)
        own = [] if own is None else list(own) if isinstance(own, (list, tuple)) else [own]
        app._celery_platform_routes = table = {name: {"queue": queue} for name, queue in routes.items()}
        app.conf.update(task_routes=(table, *(r for r in own if r is not previous)))
    return routes


# ---------------------------------------------------------------------------------------------------
# Sentinel
# ---------------------------------------------------------------------------------------------------


def sentinel_transport_options() -> dict[str, Any]:
    """Return the transport options that ``$CELERY_BROKER_SENTINEL_*`` ask for; empty without Sentinel."""
    master = os.environ.get(SENTINEL_MASTER_ENV, "").strip()
    if not master:
        return {}
    options: dict[str, Any] = {"master_name": master}
    password = os.environ.get(SENTINEL_PASSWORD_ENV, "")
    if password:
        options["sentinel_kwargs"] = {"password": password}
    return options


def apply_sentinel_options(app: Any) -> None:
    """Add the Sentinel transport options to ``app``'s broker (and Sentinel result backend) settings.

    The app's own values win, key by key; nothing changes when ``$CELERY_BROKER_SENTINEL_MASTER``
    is unset. Call it before the app connects.
    """
    options = sentinel_transport_options()
    if not options:
        return
    conf = app.conf
    names = ["broker_transport_options"]
    if str(conf.result_backend or "").startswith("sentinel://"):
        names.append("result_backend_transport_options")
    for name in names:
        current = dict(conf.get(name) or {})
        conf[name] = {**options, **current}


# ---------------------------------------------------------------------------------------------------
# Worker
# ---------------------------------------------------------------------------------------------------


def missing_queues(worker: Any, expected: frozenset[str]) -> list[str]:
    """Return the queues of ``expected`` that ``worker`` holds no active consumer for, sorted.

    Reads only in-memory state: the kombu consumer's tags and, where the transport keeps one (the
    virtual transports, Redis among them), the channel's list of queues it polls.
    """
    consumer = getattr(getattr(worker, "consumer", None), "task_consumer", None)
    if consumer is None:
        return sorted(expected)
    polled = getattr(getattr(consumer, "channel", None), "_active_queues", None)
    return sorted(q for q in expected if not consumer.consuming_from(q) or (polled is not None and q not in polled))


def consumed_queues(worker: Any) -> list[str]:
    """Return the queues ``worker`` holds an active consumer for, sorted."""
    consumer = getattr(getattr(worker, "consumer", None), "task_consumer", None)
    if consumer is None:
        return []
    return sorted(q.name for q in consumer.queues if consumer.consuming_from(q))


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery ships no type hints
    """Worker bootstep that, every second from the worker Timer, checks that the worker consumes every
    queue it was started with, and then touches the heartbeat and keeps the ready file."""

    requires = ("celery.worker.components:Timer",)
    label = "celery-platform heartbeat"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None
        path = _path_from_env(HEARTBEAT_ENV)
        self.toucher = _Toucher(path) if path is not None else None
        ready = _path_from_env(READY_ENV)
        self.ready = _Toucher(ready) if ready is not None else None
        self.expected: frozenset[str] = frozenset()
        self.missing: list[str] | None = None
        self.worker: Any = parent
        # Set by worker_ready: before it, the worker may still be starting its other bootsteps.
        self.worker_is_ready = False

    def include_if(self, parent: Any) -> bool:
        return self.toucher is not None

    def start(self, parent: Any) -> None:
        # The queues from -Q, fixed before the blueprint starts (WorkController.setup_queues); read
        # now, because cancel_consumer also deselects the queue from app.amqp.queues.
        self.expected = frozenset(parent.app.amqp.queues.consume_from or parent.app.amqp.queues)
        self.tref = parent.timer.call_repeatedly(HEARTBEAT_INTERVAL_SECONDS, self.check)

    def check(self) -> bool:
        """Touch the heartbeat and keep the ready file if every queue is consumed; return whether it is."""
        assert self.toucher is not None  # include_if guarantees it
        missing = missing_queues(self.worker, self.expected)
        if missing != self.missing and self.missing is not None:
            if missing:
                logger.error("celery_platform_hooks: no active consumer for queue(s) %s: not ready", ", ".join(missing))
            else:
                logger.warning("celery_platform_hooks: consuming every queue again: ready")
        changed = missing != self.missing
        self.missing = missing
        self._report(changed)
        if missing:
            _remove(self.ready.path if self.ready is not None else None)
            return False
        self.toucher.touch()
        if self.ready is not None and self.worker_is_ready:
            self.ready.touch()
        return True

    _reported_at = 0.0

    def _report(self, changed: bool) -> None:
        """Send the queues consumed as a ``worker-consuming`` event, on change and every few seconds.

        The event goes through the consumer's own dispatcher (the ``worker`` event group, which
        Celery sends with or without ``-E``); the exporter counts consumers per queue from it.
        """
        now = time.monotonic()
        if not changed and now - self._reported_at < CONSUMING_EVENT_EVERY_SECONDS:
            return
        dispatcher = getattr(getattr(self.worker, "consumer", None), "event_dispatcher", None)
        if dispatcher is None:
            return
        try:
            dispatcher.send(CONSUMING_EVENT, queues=consumed_queues(self.worker))
        except Exception as exc:
            # Not raised: the probes must not depend on monitoring; the next tick sends again.
            logger.warning("celery_platform_hooks: cannot send %s: %r", CONSUMING_EVENT, exc)
            return
        self._reported_at = now

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    # A cold shutdown calls terminate() instead of stop().
    terminate = stop


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """Clear files left by a previous container and add the heartbeat step to this worker."""
    heartbeat, ready = _path_from_env(HEARTBEAT_ENV), _path_from_env(READY_ENV)
    if heartbeat is None or ready is None:
        logger.warning(
            "celery_platform_hooks: %s or %s is unset, so the probes will never pass",
            HEARTBEAT_ENV,
            READY_ENV,
        )
    _remove(heartbeat)
    _remove(ready)
    # Before the consumer connects: the WorkController's own connection is for its parameters only.
    apply_sentinel_options(sender.app)
    configure_soft_shutdown(sender.app)
    install_task_routes(sender.app)  # before any task runs or is sent; conf.update flushes the router
    # worker_init is sent just before the blueprint is built from app.steps['worker'].
    sender.app.steps["worker"].add(HeartbeatStep)


def configure_soft_shutdown(app: Any, version: tuple[int, ...] | None = None) -> None:
    """A requeue pool's soft shutdown (also on idle: reserved ETA tasks); exit 1 on a Celery before 5.5,
    where REMAP_SIGTERM=SIGQUIT cancels every task at once (docs/operations/shutdown.md says why)."""
    import celery

    raw, found = os.environ.get(SOFT_SHUTDOWN_ENV, "").strip(), tuple(version or celery.VERSION[:2])
    if raw and (found < (5, 5) or not raw.isdigit()):
        why = f"Celery {celery.__version__} is older than 5.5" if found < (5, 5) else f"{raw!r} is not whole seconds"
        logger.critical(message := f"celery_platform_hooks: shutdown: requeue needs Celery 5.5+, but {why}")
        raise SystemExit(message)
    if not raw:
        return
    app.conf.worker_soft_shutdown_timeout = float(raw)
    app.conf.worker_enable_soft_shutdown_on_idle = True


def _heartbeat_steps(worker: Any) -> list[HeartbeatStep]:
    return [s for s in getattr(worker, "steps", None) or () if isinstance(s, HeartbeatStep)]


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    # sender is the Consumer; its controller is the WorkController whose blueprint holds the step.
    steps = _heartbeat_steps(getattr(sender, "controller", None))
    for step in steps:
        step.worker_is_ready = True
        # At once rather than on the next tick, so that the ready file follows consuming closely.
        step.check()
    if not steps:
        ready = _path_from_env(READY_ENV)
        if ready is not None:
            _Toucher(ready).touch()


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _remove(_path_from_env(READY_ENV))
    # The blueprint has normally stopped the step already; this covers shutdowns that skip it.
    for step in _heartbeat_steps(sender):
        step.worker_is_ready = False
        step.stop(sender)


signals.worker_init.connect(_on_worker_init, weak=False)
signals.worker_ready.connect(_on_worker_ready, weak=False)
signals.worker_shutdown.connect(_on_worker_shutdown, weak=False)


# ---------------------------------------------------------------------------------------------------
# Beat
# ---------------------------------------------------------------------------------------------------


class _BeatTicks:
    """Sends a ``beat-tick`` event per pass of beat's loop, for the exporter's last-tick metric."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.dispatcher: Any = None
        self._failing = False

    def send(self) -> None:
        try:
            if self.dispatcher is None:
                hostname = f"beat@{os.environ.get('HOSTNAME') or 'localhost'}"
                self.dispatcher = self.app.events.Dispatcher(self.app.connection_for_write(), hostname=hostname)
            self.dispatcher.send(BEAT_TICK_EVENT)
        except Exception as exc:
            # Not raised: a lost broker must not stop beat's loop. A fresh connection next pass.
            if not self._failing:
                logger.warning("celery_platform_hooks: cannot send %s: %r", BEAT_TICK_EVENT, exc)
            self._failing = True
            dispatcher, self.dispatcher = self.dispatcher, None
            if dispatcher is not None:
                with contextlib.suppress(Exception):
                    dispatcher.close()
                    dispatcher.connection.release()
        else:
            self._failing = False


def _on_beat_init(sender: Any = None, **_: Any) -> None:
    """Make each pass of this beat's scheduling loop touch the heartbeat file."""
    path = _path_from_env(HEARTBEAT_ENV)
    if path is None:
        logger.warning("celery_platform_hooks: %s is unset, so beat's probes will never pass", HEARTBEAT_ENV)
        return
    # Removed, not touched: the file appears only once the first pass has really completed.
    _remove(path)
    toucher = _Toucher(path)
    ticks = _BeatTicks(sender.app)
    scheduler = sender.scheduler
    tick = scheduler.tick

    def tick_and_touch(*args: Any, **kwargs: Any) -> Any:
        interval = tick(*args, **kwargs)
        toucher.touch()
        ticks.send()
        return interval

    # An instance attribute: the user's scheduler class is left untouched.
    scheduler.tick = tick_and_touch


def install_beat_heartbeat() -> None:
    """Connect the beat heartbeat; resolving this module's ``app`` attribute does it for you."""
    signals.beat_init.connect(_on_beat_init, weak=False, dispatch_uid="celery_platform_hooks.beat")


def _load_user_app() -> Any:
    from celery.app.utils import find_app

    target = os.environ.get(APP_ENV, "").strip()
    if not target:
        raise RuntimeError(
            f"celery_platform_hooks: {APP_ENV} is unset; set it to the value you would pass to "
            "`celery -A` (for example `proj` or `proj.celery:app`)"
        )
    try:
        app = find_app(target)
    except Exception as exc:
        # Re-raised as RuntimeError because the CLI would read an AttributeError escaping from
        # here as "this module has no attribute app", which hides the real cause.
        raise RuntimeError(f"celery_platform_hooks: cannot load {APP_ENV}={target!r}: {exc!r}") from exc
    apply_sentinel_options(app)
    heartbeat = _path_from_env(HEARTBEAT_ENV)
    if heartbeat is not None:
        # beat_args() puts the schedule file next to the heartbeat, and PersistentScheduler crashes
        # (reporting a "corrupted schedule file") when that directory does not exist yet.
        heartbeat.parent.mkdir(parents=True, exist_ok=True)
    install_beat_heartbeat()
    install_task_routes(app)
    return app


def __getattr__(name: str) -> Any:
    """Resolve ``app`` lazily, so a worker that imports this module never loads anything extra."""
    if name == "app":
        app = _load_user_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
