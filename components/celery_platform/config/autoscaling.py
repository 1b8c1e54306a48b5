"""Scale a worker pool on its queue backlog with KEDA: the settings, and the objects they become.

A pool with ``autoscaling`` gets a KEDA ``ScaledObject`` (keda.sh/v1alpha1) whose Redis triggers
count every list the pool consumes, and a ``TriggerAuthentication`` that reads the broker's password
(and CA) from Secrets: never from a literal. Its Deployment has no ``spec.replicas`` (KEDA's HPA owns
it; a value of ours would be a field-manager conflict on every ``pulumi up``, pulumi-kubernetes #2491).

Where the backlog is. kombu's Redis transport (kombu 5.7.0, ``kombu/transport/redis.py``) keeps one
list per queue *and priority step*: ``Channel._q_for_pri(queue, pri)`` maps a priority to its step
(``Channel.priority``: the largest of ``priority_steps`` not above it, default ``PRIORITY_STEPS = [0,
3, 6, 9]``) and names the list ``queue`` for step 0, else ``f"{queue}{sep}{step}"`` with ``sep =
'\\x06\\x16'``. ``Channel._size`` counts a queue as the sum of ``LLEN`` over every step. The
ScaledObject does the same: one trigger per (queue, step), and a ``scalingModifiers`` formula that adds
them, so the whole backlog counts once and the HPA sees one metric (separate triggers would be
combined with ``max``, not summed).

Through Sentinel. With a :class:`SentinelTarget` every trigger is KEDA's ``redis-sentinel`` (KEDA
2.21.0, ``pkg/scaling/scalers_builder.go``: ``NewRedisScaler(ctx, false, true, ...)``): it asks the
Sentinels at ``addresses`` for the master named ``sentinelMaster`` (go-redis' failover client) and
reads the same lists there, so a promotion moves KEDA to the new master without a change of ours. The
Sentinels' own password is the TriggerAuthentication's ``sentinelPassword``.

Everything here is plain data and pure functions: ``CeleryWorkers`` creates the resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from celery_platform.config.env import KeyRef
from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import check_count, check_dns_label, check_labels

if TYPE_CHECKING:
    from celery_platform.config.specs import PoolSpec

API_VERSION = "keda.sh/v1alpha1"
# kombu.transport.redis.Channel.sep and kombu.transport.redis.PRIORITY_STEPS (kombu 5.7.0).
PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
# KEDA's Helm chart labels its operator pods so; the operator polls Redis, so our Redis admits it.
KEDA_OPERATOR_LABELS = {"app.kubernetes.io/name": "keda-operator"}


@args_schema
@dataclass(frozen=True, kw_only=True)
class AutoscalingSpec:
    """Scale a pool between minReplicas and maxReplicas on the backlog of its queues, with KEDA."""

    max_replicas: int
    """Most pods. Admission (LimitRange, ResourceQuota) is checked at this count plus rollout surge. Required."""
    min_replicas: int = 0
    """Fewest pods; ``0`` stops the pool while its queues are empty (the first task then waits for a pod
    to start). Default: ``0``."""
    backlog_per_replica: int | None = None
    """Waiting tasks per pod that KEDA aims for: pods = ceil(backlog / this). Default: the pool's concurrency."""
    polling_interval_seconds: int = 15
    """How often KEDA reads the backlog. Default: ``15``."""
    cooldown_seconds: int = 300
    """How long the backlog must stay low before any scale-down (to zero, and the HPA's stabilization
    window). Default: ``300``."""
    priority_steps: tuple[int, ...] = KOMBU_PRIORITY_STEPS
    """The app's Redis ``priority_steps`` transport option: one list per step per queue. Default: kombu's
    ``(0, 3, 6, 9)``; set ``(0,)`` only if no task is ever sent with a priority."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem of the settings."""
        problems = check_count(f"{field}.minReplicas", self.min_replicas)
        problems += check_count(f"{field}.maxReplicas", self.max_replicas, 1)
        if not problems and self.max_replicas < self.min_replicas:
            problems.append(
                Problem(
                    f"{field}.maxReplicas",
                    "is below minReplicas",
                    shown(self.max_replicas),
                    f"at least minReplicas ({self.min_replicas})",
                )
            )
        if self.backlog_per_replica is not None:
            problems += check_count(f"{field}.backlogPerReplica", self.backlog_per_replica, 1)
        problems += check_count(f"{field}.pollingIntervalSeconds", self.polling_interval_seconds, 1, 3600)
        problems += check_count(f"{field}.cooldownSeconds", self.cooldown_seconds, 0, 3600)
        steps = self.priority_steps
        if not isinstance(steps, tuple | list) or not all(type(s) is int for s in steps):
            problems.append(
                Problem(f"{field}.prioritySteps", "not a list of whole numbers", shown(steps), "such as [0, 3, 6, 9]")
            )
            return problems
        if not steps or steps[0] != 0 or any(b <= a for a, b in pairwise(steps)):
            problems.append(
                Problem(
                    f"{field}.prioritySteps",
                    "not ascending from 0",
                    shown(steps),
                    "ascending whole numbers that start at 0, such as [0, 3, 6, 9]",
                )
            )
        elif steps[-1] > 9 or len(steps) > 10:
            problems.append(
                Problem(f"{field}.prioritySteps", "too many or too large", shown(steps), "at most 10 steps, each <= 9")
            )
        return problems

    def target(self, concurrency: int) -> int:
        """Waiting tasks per pod: the setting, else the pool's concurrency."""
        return self.backlog_per_replica or concurrency


@args_schema
@dataclass(frozen=True, kw_only=True)
class KedaOperator:
    """Where the KEDA operator runs: our Redis admits its backlog polls (the namespace denies the rest)."""

    namespace: str = "keda"
    """The operator's namespace. Default: ``"keda"``, as KEDA's Helm chart and manifests install it."""
    pod_labels: Mapping[str, str] = field(default_factory=lambda: dict(KEDA_OPERATOR_LABELS))
    """Labels of the operator's pods. Default: ``{"app.kubernetes.io/name": "keda-operator"}``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the namespace and the labels."""
        problems = check_dns_label(f"{field}.namespace", self.namespace)
        problems += check_labels(f"{field}.podLabels", self.pod_labels)
        if not self.pod_labels:
            problems.append(Problem(f"{field}.podLabels", "is empty", "{}", "the operator pods' labels"))
        return problems

    def ingress_peer(self) -> dict[str, Any]:
        """The NetworkPolicy peer that matches the operator's pods."""
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
            "podSelector": {"matchLabels": dict(self.pod_labels)},
        }


@dataclass(frozen=True, kw_only=True)
class BrokerAuth:
    """Where KEDA finds what it needs to log in to the broker: Secret keys, never values."""

    password: tuple[Any, str] | None
    """(Secret name, key) of the password, or None for a broker without one."""
    username: tuple[Any, str] | None = None
    """(Secret name, key) of an ACL user name, or None for the default user."""
    tls: bool = False
    """Connect with TLS."""
    ca: KeyRef | None = None
    """The CA certificate in a Secret, with TLS. Default: the operator's trusted CAs."""
    ca_config_map: KeyRef | None = None
    """The CA certificate in a ConfigMap, with TLS."""
    sentinel_password: tuple[Any, str] | None = None
    """(Secret name, key) of the Sentinels' own password, for a Sentinel-fronted broker."""


@dataclass(frozen=True, kw_only=True)
class SentinelTarget:
    """The Sentinels that KEDA asks for the broker's master (KEDA's ``redis-sentinel`` trigger)."""

    master_name: str
    """The master's name, as the Sentinels monitor it (``sentinelMaster``)."""
    addresses: Any
    """Every Sentinel, ``"host:port,host:port,..."`` (a str or an Output[str]): KEDA asks each in turn."""


def priority_lists(queue: str, steps: Sequence[int]) -> list[str]:
    """The Redis lists that hold ``queue``'s messages: kombu's ``Channel._q_for_pri`` for each step."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in steps]


def is_autoscaled(pool: PoolSpec) -> bool:
    """True when KEDA owns the pool's replicas."""
    return pool.autoscaling is not None


def worst_case_replicas(pool: PoolSpec) -> int:
    """The most pods the pool runs outside a rollout: maxReplicas when autoscaled, else replicas."""
    return pool.autoscaling.max_replicas if pool.autoscaling is not None else pool.replicas


def trigger_authentication_spec(auth: BrokerAuth) -> dict[str, Any]:
    """The TriggerAuthentication's spec: the password, user, Sentinel password and CA from Secrets (and a ConfigMap)."""
    secret_refs = []
    if auth.password is not None:
        secret_refs.append({"parameter": "password", "name": auth.password[0], "key": auth.password[1]})
    if auth.username is not None:
        secret_refs.append({"parameter": "username", "name": auth.username[0], "key": auth.username[1]})
    if auth.sentinel_password is not None:
        name, key = auth.sentinel_password
        secret_refs.append({"parameter": "sentinelPassword", "name": name, "key": key})
    if auth.tls and auth.ca is not None:
        secret_refs.append({"parameter": "ca", "name": auth.ca.name, "key": auth.ca.key})
    spec: dict[str, Any] = {"secretTargetRef": secret_refs}
    if auth.tls and auth.ca_config_map is not None:
        spec["configMapTargetRef"] = [
            {"parameter": "ca", "name": auth.ca_config_map.name, "key": auth.ca_config_map.key}
        ]
    return spec


def scaled_object_spec(
    deployment: Any,
    pool: PoolSpec,
    *,
    address: Any = None,
    database: int,
    tls: bool,
    auth_name: Any,
    sentinel: SentinelTarget | None = None,
) -> dict[str, Any]:
    """The ScaledObject's spec for ``pool``'s Deployment (names and addresses may be Outputs).

    One trigger per list (queue x priority step), named ``q<queue index>p<step>``; the formula adds them
    all, and ``target`` is the backlog per pod. ``activationTarget`` 0: any waiting task wakes a pool
    that is at zero. Without ``sentinel`` each trigger is ``redis`` on ``address`` (host:port); with it,
    ``redis-sentinel`` on its ``addresses`` and ``sentinelMaster`` (``address`` is then not used).
    """
    scaling = pool.autoscaling
    assert scaling is not None
    connection: dict[str, Any]
    if sentinel is None:
        if address is None:
            raise ValueError("scaled_object_spec needs the broker's address, or a SentinelTarget")
        kind, connection = "redis", {"address": address}
    else:
        kind = "redis-sentinel"
        connection = {"addresses": sentinel.addresses, "sentinelMaster": sentinel.master_name}
    target = str(scaling.target(pool.concurrency))
    triggers: list[dict[str, Any]] = []
    for i, queue in enumerate(pool.queues):
        for step, list_name in zip(scaling.priority_steps, priority_lists(queue, scaling.priority_steps), strict=True):
            triggers.append(
                {
                    "type": kind,
                    "name": f"q{i}p{step}",
                    "metadata": {
                        **connection,
                        "listName": list_name,
                        "listLength": target,
                        "databaseIndex": str(database),
                        "enableTLS": "true" if tls else "false",
                    },
                    "authenticationRef": {"name": auth_name},
                }
            )
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "pollingInterval": scaling.polling_interval_seconds,
        "cooldownPeriod": scaling.cooldown_seconds,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": scaling.cooldown_seconds}}
            },
            "scalingModifiers": {
                "formula": " + ".join(str(t["name"]) for t in triggers),
                "target": target,
                "activationTarget": "0",
                "metricType": "AverageValue",
            },
        },
        "triggers": triggers,
    }


def all_at_zero_warning(pools: Sequence[PoolSpec]) -> str | None:
    """A warning when every pool may scale to zero and nothing else sweeps kombu's ``unacked`` hash.

    kombu keeps a reserved message in the ``unacked`` hash until it is acknowledged; the tasks of a worker
    killed hard (SIGKILL, node loss) go back to their queue only when a ``restore_visible`` sweep finds
    them older than the visibility timeout: a running worker's, or the metrics exporter's
    (``CeleryMonitoringArgs.visibility_timeout_seconds``). KEDA counts the queue lists, not that hash.
    Call this only when no exporter sweeps.
    """
    if not pools or any(p.autoscaling is None or p.autoscaling.min_replicas > 0 for p in pools):
        return None
    return (
        "every pool autoscales with minReplicas 0 and no metrics exporter sweeps: the tasks of a worker killed "
        "hard (SIGKILL, node loss) are restored to their queue only by a running worker, after the visibility "
        "timeout, so with every pool at zero they wait until a new task wakes one; turn monitoring on (its "
        "exporter sweeps them) or give one pool minReplicas: 1"
    )


# KEDA's webhook: the HPA it makes is ``keda-hpa-<ScaledObject name>``, and both names are labels (63).
MAX_SCALED_OBJECT_NAME = 63 - len("keda-hpa-")


def name_problems(component: str, pools: Sequence[PoolSpec]) -> list[Problem]:
    """Refuse an autoscaled pool whose ScaledObject (``<component>-<pool>``) KEDA's webhook would refuse."""
    return [
        Problem(
            f"pools[{i}].name",
            f"makes the ScaledObject name {component}-{pool.name!r} longer than {MAX_SCALED_OBJECT_NAME} characters "
            "(KEDA names its HPA keda-hpa-<name>, at most 63)",
            shown(pool.name),
            f"at most {MAX_SCALED_OBJECT_NAME - len(component) - 1} characters with the component name {component!r}",
        )
        for i, pool in enumerate(pools)
        if pool.autoscaling is not None and len(f"{component}-{pool.name}") > MAX_SCALED_OBJECT_NAME
    ]


def autoscaling_problems(
    pools: Sequence[PoolSpec], auth: BrokerAuth | None, broker_field: str = "broker"
) -> list[Problem]:
    """Problems that only the pools and the broker together show: KEDA needs the password as a Secret key."""
    scaled = [p.name for p in pools if p.autoscaling is not None]
    if not scaled or auth is None or auth.password is not None:
        return []
    return [
        Problem(
            f"{broker_field}.passwordSecret",
            f"is required when a pool autoscales ({', '.join(scaled)}): KEDA reads the broker password from a "
            "Secret key, not from the URL",
            "nothing",
            "the existing Secret and key that hold the password",
        )
    ]


__all__ = [
    "API_VERSION",
    "KOMBU_PRIORITY_STEPS",
    "PRIORITY_SEP",
    "AutoscalingSpec",
    "BrokerAuth",
    "KedaOperator",
    "SentinelTarget",
    "all_at_zero_warning",
    "autoscaling_problems",
    "is_autoscaled",
    "name_problems",
    "priority_lists",
    "scaled_object_spec",
    "trigger_authentication_spec",
    "worst_case_replicas",
]
