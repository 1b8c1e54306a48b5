"""``broker.type: sentinel``: our Redis as one primary and replicas, watched by Sentinels that fail it over.

What a user sets here is the topology and the failover's timing; the data nodes take the ``redis``
key's image, storage and resources. Sentinel elects a new primary only with a majority of the
Sentinels that it knows (``quorum`` alone only decides that the primary is down), so fewer than three
Sentinels cannot survive the loss of one.

Redis replication is asynchronous: a write that the primary acknowledged and had not yet sent to a
replica is lost when the primary dies. ``minReplicasToWrite``/``minReplicasMaxLagSeconds`` bound that
window: the primary refuses writes while fewer replicas than that have acknowledged within that lag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from celery_platform.config.placement import SpreadConstraint, check_spread
from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.specs import PodResources, RedisSpec, pod_resources
from celery_platform.config.validation import check_count

SENTINEL_PORT = 26379
MIN_SENTINELS = 3
MAX_SENTINELS = 9
MAX_REPLICAS = 8
# Redis's own rule for a Sentinel master name: no whitespace, and our scripts and URLs need no quoting.
_MASTER_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# The data nodes, and apart from them the Sentinels, spread as evenly as the nodes allow: DoNotSchedule on
# hostnames (one per node when there are as many nodes as pods; a one-node dev cluster still schedules, as
# one domain has no skew), a preference across zones. Nodes whose taints the pods do not tolerate are no
# domain (Honor): an empty tainted GPU node would otherwise hold a pod Pending.
DEFAULT_BROKER_SPREAD = (
    SpreadConstraint(
        topology_key="kubernetes.io/hostname", when_unsatisfiable="DoNotSchedule", node_taints_policy="Honor"
    ),
    SpreadConstraint(topology_key="topology.kubernetes.io/zone", node_taints_policy="Honor"),
)


@args_schema
@dataclass(frozen=True, kw_only=True)
class SentinelSpec:
    """Redis with Sentinel: one primary, ``replicas`` replicas and ``sentinels`` Sentinels that fail it over."""

    replicas: int = 2
    """Replicas of the primary, 1 to 8: one of them is promoted when the primary is lost. Default: ``2``."""
    sentinels: int = 3
    """Sentinels, 3 to 9; a failover needs a majority of them, so an odd count is the useful one. Default: ``3``."""
    quorum: int | None = None
    """Sentinels that must agree that the primary is down before a failover starts, 1 to ``sentinels``.
    Default: a majority of ``sentinels``."""
    master_name: str = "celery"
    """The name the Sentinels know the primary by, which every client asks for. Default: ``"celery"``."""
    down_after_milliseconds: int = 5000
    """How long the primary must not answer before a Sentinel holds it down, 1000 to 600000. Default: ``5000``."""
    failover_timeout_milliseconds: int = 60000
    """Sentinel's ``failover-timeout``: how long a failover may take before another Sentinel retries it,
    at least 4 times ``downAfterMilliseconds``. Default: ``60000``."""
    min_replicas_to_write: int = 1
    """The primary refuses writes while fewer replicas than this are connected within
    ``minReplicasMaxLagSeconds``: the bound on writes lost with it. 0 to ``replicas - 1``, so that a
    replica may restart without stopping writes. Default: ``1``."""
    min_replicas_max_lag_seconds: int = 10
    """How recent a replica's acknowledgement must be to count for ``minReplicasToWrite``, 1 to 3600.
    Default: ``10``."""
    resources: PodResources = field(default_factory=lambda: pod_resources("50m", "32Mi", "100m", "64Mi"))
    """Each Sentinel container's resources. Default: ``50m``/``32Mi`` requests, ``100m``/``64Mi`` limits."""
    topology_spread: tuple[SpreadConstraint, ...] = DEFAULT_BROKER_SPREAD
    """How the data nodes, and apart from them the Sentinels, spread (each set on its own selector), counting
    only nodes whose taints the pods tolerate (``nodeTaintsPolicy: Honor``): as evenly over nodes as they allow
    (``DoNotSchedule``, ``maxSkew`` 1 on ``kubernetes.io/hostname``: one per node with at least as many nodes
    as pods), and across zones when possible.
    Default: those two constraints, on ``kubernetes.io/hostname`` and ``topology.kubernetes.io/zone``."""

    def effective_quorum(self) -> int:
        """The quorum: the setting, else a majority of the Sentinels."""
        return self.quorum if self.quorum is not None else self.sentinels // 2 + 1

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the settings, each naming its field."""
        # Each relation is checked once the fields it relates are valid on their own, whatever the other
        # fields hold: one bad field must hide no other field's problem.
        replicas = check_count(f"{field}.replicas", self.replicas, 1, MAX_REPLICAS)
        sentinels = check_count(f"{field}.sentinels", self.sentinels, MIN_SENTINELS, MAX_SENTINELS)
        problems = replicas + sentinels
        if self.quorum is not None:
            quorum = check_count(f"{field}.quorum", self.quorum, 1, MAX_SENTINELS)
            problems += quorum
            if not quorum and not sentinels and self.quorum > self.sentinels:
                problems.append(
                    Problem(f"{field}.quorum", "exceeds sentinels", shown(self.quorum), f"1 to {self.sentinels}")
                )
        problems += check_master_name(f"{field}.masterName", self.master_name)
        down = check_count(f"{field}.downAfterMilliseconds", self.down_after_milliseconds, 1000, 600000)
        timeout = check_count(f"{field}.failoverTimeoutMilliseconds", self.failover_timeout_milliseconds, 1000)
        problems += down + timeout
        if not down and not timeout and self.failover_timeout_milliseconds < 4 * self.down_after_milliseconds:
            problems.append(
                Problem(
                    f"{field}.failoverTimeoutMilliseconds",
                    "is below 4 times downAfterMilliseconds (a failover would be retried before it can finish)",
                    shown(self.failover_timeout_milliseconds),
                    f"at least {4 * self.down_after_milliseconds}",
                )
            )
        to_write = check_count(f"{field}.minReplicasToWrite", self.min_replicas_to_write, 0, MAX_REPLICAS)
        problems += to_write
        if not to_write and not replicas and self.min_replicas_to_write > self.replicas - 1:
            problems.append(
                Problem(
                    f"{field}.minReplicasToWrite",
                    "leaves no replica to lose: the primary would refuse writes while one replica restarts",
                    shown(self.min_replicas_to_write),
                    f"0 to {self.replicas - 1} (replicas - 1)",
                )
            )
        problems += check_count(f"{field}.minReplicasMaxLagSeconds", self.min_replicas_max_lag_seconds, 1, 3600)
        problems += self.resources.validate(f"{field}.resources")
        problems += check_spread(f"{field}.topologySpread", self.topology_spread)
        return problems


def persistence_problems(redis: RedisSpec, field_name: str = "redis.persistent") -> list[Problem]:
    """Sentinel mode needs the data on volumes: a primary that restarts empty would be replicated, emptying all."""
    if redis.persistent:
        return []
    return [
        Problem(
            field_name,
            "must be true with broker.type sentinel (a node that restarted empty while still named primary "
            "would make every replica copy its empty dataset)",
            "false",
            "true",
        )
    ]


def check_master_name(field: str, value: object) -> list[Problem]:
    """A Sentinel master name: 1 to 64 of ``[A-Za-z0-9._-]`` (no quoting in the pods' scripts and the URLs)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return [Problem(field, "is not a name of 1 to 64 characters", shown(value), "e.g. 'celery'")]
    if not set(value) <= _MASTER_NAME_CHARS:
        return [Problem(field, "has characters outside [A-Za-z0-9._-]", shown(value), "e.g. 'celery'")]
    return []
