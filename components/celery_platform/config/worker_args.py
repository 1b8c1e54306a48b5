"""The ``celery worker`` options that the platform owns, and extraArgs parsed as Celery's own click command does.

``celery worker`` is a click command, and click unpacks clustered short options: ``-EB`` is ``-E -B``
(an embedded beat in every worker), ``-EQfoo`` sets the queues, ``-Ec16`` the concurrency. So extraArgs
is parsed with click itself, on a command declared with the options of Celery 5.7's worker command
(``celery.bin.worker.worker``); the unit tier checks that this table is Celery's, option by option, and
that both parsers set the same options for generated argument lists. Celery itself is no runtime
dependency of the package (it lives in the app image), click is.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import click
from click.core import ParameterSource

from celery_platform.config.problems import Problem, shown

# (parameter name, option strings, kind): kind is "flag", "int", "float", "text" or a tuple of choices.
# Celery 5.7's celery/bin/worker.py, in its order; tests/unit/test_worker_args.py compares it with Celery's.
WORKER_OPTIONS: tuple[tuple[str, tuple[str, ...], str | tuple[str, ...]], ...] = (
    ("hostname", ("-n", "--hostname"), "text"),
    ("detach", ("-D", "--detach"), "flag"),
    ("statedb", ("-S", "--statedb"), "text"),
    ("loglevel", ("-l", "--loglevel"), ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")),
    ("optimization", ("-O", "--optimization"), ("default", "fair")),
    ("prefetch_multiplier", ("--prefetch-multiplier",), "int"),
    ("disable_prefetch", ("--disable-prefetch",), "flag"),
    ("concurrency", ("-c", "--concurrency"), "text"),
    ("pool", ("-P", "--pool"), ("prefork", "eventlet", "gevent", "solo", "processes", "threads", "custom")),
    ("task_events", ("-E", "--task-events", "--events"), "flag"),
    ("time_limit", ("--time-limit",), "float"),
    ("soft_time_limit", ("--soft-time-limit",), "float"),
    ("max_tasks_per_child", ("--max-tasks-per-child",), "int"),
    ("pool_start_method", ("--pool-start-method",), ("fork", "spawn")),
    ("max_memory_per_child", ("--max-memory-per-child",), "int"),
    ("purge", ("--purge", "--discard"), "flag"),
    ("queues", ("--queues", "-Q"), "text"),
    ("exclude_queues", ("--exclude-queues", "-X"), "text"),
    ("include", ("--include", "-I"), "text"),
    ("without_gossip", ("--without-gossip",), "flag"),
    ("without_mingle", ("--without-mingle",), "flag"),
    ("without_heartbeat", ("--without-heartbeat",), "flag"),
    ("heartbeat_interval", ("--heartbeat-interval",), "int"),
    ("autoscale", ("--autoscale",), "text"),
    ("beat", ("-B", "--beat"), "flag"),
    ("schedule_filename", ("-s", "--schedule-filename", "--schedule"), "text"),
    ("scheduler", ("--scheduler",), "text"),
    ("logfile", ("--logfile", "-f"), "text"),
    ("pidfile", ("--pidfile",), "text"),
    ("uid", ("--uid",), "text"),
    ("gid", ("--gid",), "text"),
    ("umask", ("--umask",), "text"),
    ("executable", ("--executable",), "text"),
)
# click's own --help: it prints the help and exits, so no worker would start.
HELP = "help"

# Options the platform sets, or that would break what it relies on (PID 1, one beat, the probes).
OWNED_WORKER_OPTIONS = {
    "queues": "the pool's queues",
    "exclude_queues": "the pool's queues",
    "concurrency": "concurrency",
    "autoscale": "concurrency (always explicit)",
    "hostname": "the pool's name",
    "include": "the hooks module",
    "pool": "poolType",
    "loglevel": "logLevel",
    "max_memory_per_child": "the memory limit and concurrency",
    "prefetch_multiplier": "the platform (always 1)",
    "disable_prefetch": "the platform (prefetch multiplier 1)",
    "without_mingle": "the platform",
    "without_gossip": "the platform",
    "beat": "beat, which runs once, in its own StatefulSet",
    "schedule_filename": "beat's schedule file",
    "scheduler": "beat, which runs once, in its own StatefulSet",
    "detach": "Kubernetes (Celery must stay PID 1)",
    "pidfile": "Kubernetes (Celery must stay PID 1)",
    "uid": "runAsUser (the pod's securityContext)",
    "gid": "runAsUser (the pod's securityContext)",
    "logfile": "the container log",
    "purge": "the platform (every pod start would drop the queues' waiting tasks)",
    HELP: "the platform (--help prints the help and exits: no worker would start)",
}
ALLOWED_EXAMPLE = "an option the platform does not set, e.g. --max-tasks-per-child=100"
MAX_EXTRA_ARGS = 100


def _param_type(kind: str | tuple[str, ...]) -> click.ParamType[Any, Any]:
    if isinstance(kind, tuple):
        return click.Choice(kind)
    types: dict[str, click.ParamType[Any, Any]] = {"int": click.INT, "float": click.FLOAT, "text": click.STRING}
    return types[kind]


@functools.cache
def worker_command() -> click.Command:
    """``celery worker`` as click parses it: Celery's options, extra arguments allowed (Celery reads them
    as ``key=value`` configuration), and ``--help`` as a plain flag, so that parsing never prints."""
    params: list[click.Parameter] = [
        click.Option([*opts, name], is_flag=True)
        if kind == "flag"
        else click.Option([*opts, name], type=_param_type(kind))
        for name, opts, kind in WORKER_OPTIONS
    ]
    params.append(click.Option(["--help", HELP], is_flag=True))
    return click.Command("worker", params=params, add_help_option=False, context_settings={"allow_extra_args": True})


def _long(name: str) -> str:
    """The parameter's first long option, as a message names it (``beat``: ``--beat``)."""
    return next((o for _, opts, _ in WORKER_OPTIONS if _ == name for o in opts if o.startswith("--")), "--help")


class WorkerArgsError(ValueError):
    """click refused the arguments, as ``celery worker`` would at start."""


def options_set(
    args: Sequence[str], command: click.Command | None = None, resilient: bool = False
) -> tuple[set[str], list[str]]:
    """Return (the parameters ``args`` set on the command line, the positional arguments left over).

    Raises WorkerArgsError with click's message when click refuses ``args`` (an unknown option, a
    missing or invalid value).
    """
    command = command or worker_command()
    try:
        ctx = command.make_context("worker", list(args), resilient_parsing=resilient)
    except click.UsageError as err:
        raise WorkerArgsError(err.format_message()) from None
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    return given, list(ctx.args)


def check_worker_args(field: str, args: Sequence[str]) -> list[Problem]:
    """Refuse extraArgs that click refuses, that set an option the platform owns, or that hold positional arguments.

    Each owned option is reported at the element that sets it (``-EB`` sets ``beat`` at its own index).
    """
    args = list(args)
    if len(args) > MAX_EXTRA_ARGS:
        return [Problem(field, "too many arguments", f"{len(args)} arguments", f"at most {MAX_EXTRA_ARGS}")]
    general = []  # after the owned options: they are the likelier mistake
    try:
        options_set(args)
    except WorkerArgsError as err:
        general.append(Problem(field, f"celery worker would refuse it: {err}", shown(args), ALLOWED_EXAMPLE))
    try:
        _, positional = options_set(args, resilient=True)
    except WorkerArgsError:
        positional = []
    if positional:
        general.append(
            Problem(
                field,
                "holds positional arguments, which celery worker reads as configuration (key=value)",
                shown(positional),
                "options only; settings go in the app's configuration",
            )
        )
    problems = []
    seen: set[str] = set()
    start = 0
    for end in range(1, len(args) + 1):
        try:
            worker_command().make_context("worker", args[:end])
        except click.BadParameter:
            pass  # a bad value: the option is set all the same, and named below
        except click.UsageError:
            continue  # an option whose value is the next element, or one click does not know
        now, _ = options_set(args[:end], resilient=True)
        for name in sorted((now - seen) & OWNED_WORKER_OPTIONS.keys()):
            problems.append(
                Problem(
                    f"{field}[{start}]",
                    f"sets {_long(name)}, which is the platform's: {OWNED_WORKER_OPTIONS[name]}",
                    shown(" ".join(args[start:end])),
                    ALLOWED_EXAMPLE,
                )
            )
        seen, start = seen | now, end
    return problems + general
