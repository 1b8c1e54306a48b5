"""The celery worker options that the platform owns, and the check that extraArgs leaves them alone."""

from __future__ import annotations

from collections.abc import Iterable

from celery_platform.config.problems import Problem, shown

# Worker options the platform sets (or that would break what it relies on): PID 1, one beat, the probes.
OWNED_WORKER_OPTIONS = {
    "-A": "celeryApp",
    "--app": "celeryApp",
    "-Q": "the pool's queues",
    "--queues": "the pool's queues",
    "-X": "the pool's queues",
    "--exclude-queues": "the pool's queues",
    "-c": "concurrency",
    "--concurrency": "concurrency",
    "--autoscale": "concurrency (always explicit)",
    "-n": "the pool's name",
    "--hostname": "the pool's name",
    "-I": "the hooks module",
    "--include": "the hooks module",
    "-P": "poolType",
    "--pool": "poolType",
    "-l": "logLevel",
    "--loglevel": "logLevel",
    "--max-memory-per-child": "the memory limit and concurrency",
    "--prefetch-multiplier": "the platform (always 1)",
    "--without-mingle": "the platform",
    "--without-gossip": "the platform",
    "-B": "beat, which runs once, in its own StatefulSet",
    "--beat": "beat, which runs once, in its own StatefulSet",
    "-D": "Kubernetes (Celery must stay PID 1)",
    "--detach": "Kubernetes (Celery must stay PID 1)",
    "--pidfile": "Kubernetes (Celery must stay PID 1)",
    "-f": "the container log",
    "--logfile": "the container log",
    "-s": "beat's schedule file",
    "--schedule": "beat's schedule file",
}


def check_worker_args(field: str, args: Iterable[str]) -> list[Problem]:
    """Refuse an extra ``celery worker`` option that the platform owns (``-Q``, ``-c``, ``--include``, ...)."""
    problems = []
    for i, arg in enumerate(args):
        option = arg.split("=", 1)[0]
        if option not in OWNED_WORKER_OPTIONS and len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            option = arg[:2]  # a short option with its value attached: -Qdefault, -c4
        if option in OWNED_WORKER_OPTIONS:
            problems.append(
                Problem(
                    f"{field}[{i}]",
                    f"{option} is set by the platform from {OWNED_WORKER_OPTIONS[option]}",
                    shown(arg),
                    "an option the platform does not set, e.g. --max-tasks-per-child=100",
                )
            )
    return problems
