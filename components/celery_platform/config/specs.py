"""What a user types for the broker, the worker pools and beat, and the checks each runs on itself.

The typed specs (``PoolSpec``, ``BeatSpec``, ``RedisSpec``, ``PodResources``) and the per-child memory
budget that a pool's validation and its ``--max-memory-per-child`` flag share. The pod specs built from
them are in ``celery_platform.builders.workloads``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from celery_platform.config.autoscaling import AutoscalingSpec
from celery_platform.config.guardrails import Resources
from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import parse_memory
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import (
    check_count,
    check_dns_label,
    check_dns_subdomain,
    check_image_pinned,
    check_memory,
    check_queue_name,
    check_string_tuple,
)
from celery_platform.config.worker_args import check_worker_args

# Memory a prefork parent and the interpreter need before any child runs a task.
WORKER_BASE_MEMORY = 128 * 1024**2
# Share of the memory limit that children may use before Celery recycles them (headroom for the parent).
CHILD_MEMORY_SHARE = Decimal("0.8")
# Below this per-child budget a worker is likely to be OOM-killed while loading its tasks.
MIN_CHILD_MEMORY = 96 * 1024**2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
POOL_TYPES = ("prefork", "threads", "solo", "gevent", "eventlet")
SHUTDOWN_MODES = ("finish", "requeue")
# Time after the soft shutdown for the cold shutdown: cancel the tasks, restore their messages, exit.
COLD_SHUTDOWN_MARGIN_SECONDS = 30
# A soft shutdown longer than an hour is a `finish` pool that loses its tasks at the end.
MAX_SOFT_SHUTDOWN_SECONDS = 3600


@args_schema
@dataclass(frozen=True, kw_only=True)
class PodResources:
    """Requests and limits of one container."""

    requests: Resources
    """What the scheduler reserves and the quota counts."""
    limits: Resources
    """The ceiling; memory beyond it is an OOM kill of the whole container."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of both halves, and a limit below its request."""
        problems = self.requests.validate(f"{field}.requests") + self.limits.validate(f"{field}.limits")
        if problems:
            return problems
        for resource, request in self.requests.amounts().items():
            if request > self.limits.amounts()[resource]:
                problems.append(
                    Problem(
                        f"{field}.limits.{resource}",
                        "is below its request",
                        shown(getattr(self.limits, resource)),
                        f"at least {getattr(self.requests, resource)!r}",
                    )
                )
        return problems

    def to_k8s(self) -> dict[str, dict[str, str]]:
        """Return the container's ``resources`` mapping."""
        return {"requests": self.requests.to_k8s(), "limits": self.limits.to_k8s()}


def pod_resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> PodResources:
    """Return PodResources from request and limit quantities."""
    return PodResources(
        requests=Resources(cpu=cpu, memory=memory), limits=Resources(cpu=cpu_limit, memory=memory_limit)
    )


@args_schema
@dataclass(frozen=True, kw_only=True)
class PoolSpec:
    """One worker pool: a Deployment that consumes a list of queues."""

    name: str
    """Pool name (RFC 1123 label); the Deployment is ``<platform>-<name>`` and nodes ``<name>@<pod>``."""
    queues: tuple[str, ...]
    """Queues this pool consumes (``-Q``). Required: a pool with no queue does nothing."""
    replicas: int = 1
    """Pods. Default: ``1``."""
    concurrency: int = 2
    """Prefork children per pod, always passed explicitly (billiard would count the node's CPUs). Default: ``2``."""
    resources: PodResources = field(default_factory=lambda: pod_resources("100m", "256Mi", "200m", "512Mi"))
    """Worker container resources. Default: ``100m``/``256Mi`` requests, ``200m``/``512Mi`` limits."""
    log_level: str = "INFO"
    """``--loglevel``: DEBUG, INFO, WARNING, ERROR or CRITICAL. Default: ``"INFO"``."""
    pool_type: str = "prefork"
    """``-P``: prefork, threads, solo, gevent or eventlet (the last two must be installed in the image);
    ``--max-memory-per-child`` and the per-child memory check apply to prefork only. Default: ``"prefork"``."""
    extra_args: tuple[str, ...] = ()
    """More ``celery worker`` options, e.g. ``--max-tasks-per-child=100``, read as Celery's click command
    reads them; options the platform sets (``-Q``, ``-c``, ``-n``, ``--include``, ``-B``, ...), however
    clustered (``-EB``), are refused, as are unknown options and positional arguments. Default: none."""
    pod: PodSettings | None = None
    """Pod settings of this pool; a field set here replaces the platform's. Default: the platform's."""
    autoscaling: AutoscalingSpec | None = None
    """Scale on the backlog of the pool's queues with KEDA, between minReplicas and maxReplicas;
    ``replicas`` must then be left out. Default: unset (``replicas`` pods)."""
    shutdown: str = "finish"
    """What a pod being stopped (rollout, scale-down, drain) does with its running tasks.
    ``finish``: a warm shutdown waits for them; terminationGracePeriodSeconds is
    ``longestTaskSeconds + 30``. ``requeue`` (Celery 5.5 or later in the image, or the worker refuses
    to start): SIGTERM starts Celery's soft shutdown (``REMAP_SIGTERM=SIGQUIT``), tasks get
    ``softShutdownSeconds`` to finish, then a cold shutdown cancels the rest and puts their
    unacknowledged messages back on their queue for another worker; terminationGracePeriodSeconds is
    ``softShutdownSeconds + 30`` (the cold shutdown's margin). See docs/operations/shutdown.md.
    Default: ``"finish"``."""
    soft_shutdown_seconds: int = 60
    """``requeue`` only: Celery's ``worker_soft_shutdown_timeout``, how long running tasks (and an
    idle worker's reserved ETA tasks) get before the cold shutdown requeues them; 1 to 3600.
    Default: ``60``."""

    def grace_period_seconds(self, longest_task_seconds: int) -> int:
        """Return terminationGracePeriodSeconds: what the shutdown mode waits for, plus 30 s to ack and exit."""
        waited = self.soft_shutdown_seconds if self.shutdown == "requeue" else longest_task_seconds
        return waited + COLD_SHUTDOWN_MARGIN_SECONDS

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of this pool."""
        problems = check_dns_label(f"{field}.name", self.name, max_length=40)
        tuple_problems = check_string_tuple(f"{field}.queues", self.queues)
        problems += tuple_problems
        if not self.queues:
            problems.append(Problem(f"{field}.queues", "is empty", "[]", "at least one queue name"))
        elif not tuple_problems:
            for i, queue in enumerate(self.queues):
                problems += check_queue_name(f"{field}.queues[{i}]", queue)
        problems += check_count(f"{field}.replicas", self.replicas)
        count_problems = check_count(f"{field}.concurrency", self.concurrency, minimum=1)
        resource_problems = self.resources.validate(f"{field}.resources")
        problems += count_problems + resource_problems
        # The per-child memory budget (--max-memory-per-child) exists only for prefork children.
        if not count_problems and not resource_problems and self.pool_type == "prefork":
            kib = child_budget_kib(self.resources, self.concurrency)
            if kib < 1024:
                problems.append(
                    Problem(
                        f"{field}.concurrency",
                        f"leaves {max(kib, 0)}KiB of the {self.resources.limits.memory} memory limit per child",
                        shown(self.concurrency),
                        "a concurrency that leaves each child at least 1Mi (--max-memory-per-child)",
                    )
                )
        problems += check_log_level(f"{field}.logLevel", self.log_level)
        if self.pool_type not in POOL_TYPES:
            problems.append(
                Problem(f"{field}.poolType", "unknown pool type", shown(self.pool_type), " or ".join(POOL_TYPES))
            )
        elif self.pool_type == "solo" and self.concurrency != 1:
            problems.append(
                Problem(f"{field}.concurrency", "the solo pool runs one task at a time", shown(self.concurrency), "1")
            )
        problems += check_shutdown(field, self.shutdown, self.soft_shutdown_seconds)
        problems += check_string_tuple(f"{field}.extraArgs", self.extra_args)
        if not problems:
            problems += check_worker_args(f"{field}.extraArgs", self.extra_args)
        if self.pod is not None:
            problems += self.pod.validate(f"{field}.pod")
        if self.autoscaling is not None:
            problems += self.autoscaling.validate(f"{field}.autoscaling")
            if self.replicas != 1:
                problems.append(
                    Problem(
                        f"{field}.replicas",
                        "is set on an autoscaled pool, whose replicas KEDA owns",
                        shown(self.replicas),
                        "no replicas: autoscaling.minReplicas and autoscaling.maxReplicas bound it",
                    )
                )
        return problems


@args_schema
@dataclass(frozen=True, kw_only=True)
class BeatSpec:
    """The single Celery beat."""

    enabled: bool = True
    """Run beat at all. Default: ``True``."""
    max_interval_seconds: int = 30
    """Longest sleep of beat's loop (``--max-interval``), which bounds its heartbeat. Default: ``30``."""
    resources: PodResources = field(default_factory=lambda: pod_resources("50m", "128Mi", "100m", "256Mi"))
    """Beat container resources. Default: ``50m``/``128Mi`` requests, ``100m``/``256Mi`` limits."""
    log_level: str = "INFO"
    """``--loglevel``: DEBUG, INFO, WARNING, ERROR or CRITICAL. Default: ``"INFO"``."""
    pod: PodSettings | None = None
    """Pod settings of beat; a field set here replaces the platform's. Default: the platform's."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of beat's settings."""
        problems = check_count(f"{field}.maxIntervalSeconds", self.max_interval_seconds, 1, 86400)
        problems += self.resources.validate(f"{field}.resources") + check_log_level(f"{field}.logLevel", self.log_level)
        if self.pod is not None:
            problems += self.pod.validate(f"{field}.pod")
        return problems


def check_shutdown(field: str, mode: str, soft_shutdown_seconds: int) -> list[Problem]:
    """Check a pool's shutdown mode and its soft shutdown timeout."""
    if mode not in SHUTDOWN_MODES:
        return [Problem(f"{field}.shutdown", "unknown shutdown mode", shown(mode), " or ".join(SHUTDOWN_MODES))]
    return check_count(f"{field}.softShutdownSeconds", soft_shutdown_seconds, 1, MAX_SOFT_SHUTDOWN_SECONDS)


def check_log_level(field: str, level: str) -> list[Problem]:
    """Check a Celery ``--loglevel`` (any case, as Celery takes it)."""
    if str(level).upper() not in LOG_LEVELS:
        return [Problem(field, "unknown log level", shown(level), " or ".join(LOG_LEVELS))]
    return []


@args_schema
@dataclass(frozen=True, kw_only=True)
class RedisSpec:
    """The Redis broker."""

    image: str = "redis:7.2.7"
    """Redis image, pinned by tag or digest. Default: ``"redis:7.2.7"``."""
    persistent: bool = False
    """Keep data on a PersistentVolumeClaim (append-only file); an emptyDir otherwise. Default: ``False``."""
    storage_size: str = "1Gi"
    """PVC size when persistent. Default: ``"1Gi"``."""
    storage_class: str = ""
    """PVC storage class; empty means the cluster default. Default: ``""``."""
    resources: PodResources = field(default_factory=lambda: pod_resources("100m", "256Mi", "200m", "512Mi"))
    """Redis container resources; ``maxmemory`` is 80% of the memory limit.
    Default: ``100m``/``256Mi`` requests, ``200m``/``512Mi`` limits."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the broker's settings."""
        problems = self.resources.validate(f"{field}.resources")
        problems += check_image_pinned(f"{field}.image", self.image)
        # Checked either way: without persistence it is the emptyDir's sizeLimit.
        problems += check_memory(f"{field}.storageSize", self.storage_size)
        if self.storage_class:
            problems += check_dns_subdomain(f"{field}.storageClass", self.storage_class)
        return problems

    def maxmemory_bytes(self) -> int:
        """Return Redis ``maxmemory``: 80% of the memory limit, leaving room for fork and buffers."""
        return int(parse_memory(self.resources.limits.memory) * Decimal("0.8"))


def child_budget_kib(resources: PodResources, concurrency: int, memory_volume_bytes: int = 0) -> int:
    """Return each child's share of the memory limit in KiB, before the floor of 1 (may be 0 or less).

    Memory-backed emptyDirs count against the container's limit, so they come off the budget first.
    """
    limit = parse_memory(resources.limits.memory)
    return int((limit * CHILD_MEMORY_SHARE - WORKER_BASE_MEMORY - memory_volume_bytes) / concurrency / 1024)


def max_memory_per_child_kib(resources: PodResources, concurrency: int, memory_volume_bytes: int = 0) -> int:
    """Return ``--max-memory-per-child`` (KiB): the limit's child share, less the parent, split by concurrency.

    A child over it is replaced after its task instead of growing until the kernel kills the whole
    container with no traceback (cgroup v2), the likeliest "exits silently" of the report. Files in
    a memory-backed emptyDir (``memory_volume_bytes``) are charged to the same limit, so they come off too.
    """
    return max(child_budget_kib(resources, concurrency, memory_volume_bytes), 1)


def memory_warning(field: str, pool: PoolSpec, memory_volume_bytes: int = 0) -> str | None:
    """Return a warning when a prefork pool's memory limit leaves each child less than MIN_CHILD_MEMORY."""
    if pool.pool_type != "prefork":
        return None  # threads, solo, gevent and eventlet run tasks in the one worker process
    per_child = max_memory_per_child_kib(pool.resources, pool.concurrency, memory_volume_bytes) * 1024
    if per_child < MIN_CHILD_MEMORY:
        volumes = f" after {memory_volume_bytes // 1024**2}Mi of memory-backed volumes" if memory_volume_bytes else ""
        return (
            f"{field}: memory limit {pool.resources.limits.memory} leaves {per_child // 1024**2}Mi per child at "
            f"concurrency {pool.concurrency}{volumes} (below {MIN_CHILD_MEMORY // 1024**2}Mi): expect OOM kills; "
            "raise the limit or lower the concurrency"
        )
    return None
