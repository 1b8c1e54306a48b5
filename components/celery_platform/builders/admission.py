"""Admission arithmetic before apply: LimitRanger and ResourceQuota, recomputed on our pod specs.

The functions read plain Kubernetes pod specs (camelCase mappings) so that the same code checks
the specs we are about to create and the YAML that ``celery_platform.render`` prints. They follow the API
server: requests default to limits, then LimitRanger fills unset values from the LimitRange
defaults, then checks min, max and maxLimitRequestRatio on every container and init container.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import format_like, parse_cpu, parse_memory
from celery_platform.config.validation import check_queue_name

RESOURCES = ("cpu", "memory")
_PARSE = {"cpu": parse_cpu, "memory": parse_memory}


@dataclass(frozen=True, kw_only=True)
class PodPlan:
    """A workload as admission sees it: whose pods, how many at worst, and their spec."""

    owner: str
    """Who the pods belong to, for messages (``pools[main]``, ``redis``, ``beat``)."""
    replicas: int
    """Pods in the steady state."""
    surge: int
    """Extra pods a rollout may add (RollingUpdate maxSurge; 0 for Recreate and StatefulSets)."""
    pod_spec: Mapping[str, Any]
    """The pod template's spec."""
    claims: Sequence[str] = field(default_factory=tuple)
    """Storage requests of each pod's PersistentVolumeClaims (StatefulSet volumeClaimTemplates)."""
    replicas_field: str = ""
    """What set ``replicas``, when it is not a plain replica count (``autoscaling.maxReplicas``), so that
    a quota message names it. Default: the pool's replicas."""
    init_field: str = ""
    """The config field that sets the init containers' resources (``initResources``), so that their
    problems name it, once, instead of every pod that runs them. Default: name the pod's owner."""
    resources_field: str = ""
    """The config field that sets the app containers' resources (``broker.sentinel.resources``), so that
    their problems name what the user writes. Default: ``<owner>.<container name>``."""


def _amount(resource: str, value: Any) -> Decimal:
    return _PARSE[resource](value)


def effective_resources(
    container: Mapping[str, Any], limit_range: LimitRangeSpec
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Return the container's requests and limits after API defaulting and LimitRanger defaults."""
    resources = container.get("resources") or {}
    limits = {r: _amount(r, v) for r, v in (resources.get("limits") or {}).items() if r in RESOURCES}
    requests = {r: _amount(r, v) for r, v in (resources.get("requests") or {}).items() if r in RESOURCES}
    for resource in RESOURCES:
        if resource not in requests and resource in limits:
            requests[resource] = limits[resource]  # API defaulting: an unset request equals the limit
        limits.setdefault(resource, limit_range.default.amounts()[resource])
        requests.setdefault(resource, limit_range.default_request.amounts()[resource])
    return requests, limits


def _containers(pod_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [("initContainers", c) for c in pod_spec.get("initContainers") or []] + [
        ("containers", c) for c in pod_spec.get("containers") or []
    ]


def _fmt(resource: str, value: Decimal, like: str = "") -> str:
    """Format CPU in millicores (what the API server prints back), bytes in the unit of ``like``.

    ``like`` is the quantity the user wrote for the same line (``4Gi``), so that a message reads in the
    stack file's own units; Mi without one.
    """
    if resource == "cpu":
        return format_like(value, "1m")
    return format_like(value, like or "1Mi")


def check_limit_range(plan: PodPlan, limit_range: LimitRangeSpec) -> list[Problem]:
    """Return every LimitRange violation of the plan's containers, as the LimitRanger would refuse them."""
    problems = []
    minimum, maximum = limit_range.min.amounts(), limit_range.max.amounts()
    ratio = {"cpu": limit_range.max_limit_request_ratio.cpu, "memory": limit_range.max_limit_request_ratio.memory}
    for kind, container in _containers(plan.pod_spec):
        where = f"{plan.owner}.{container['name']}"
        if kind == "initContainers" and plan.init_field:
            where = plan.init_field
        elif kind == "containers" and plan.resources_field:
            where = plan.resources_field
        requests, limits = effective_resources(container, limit_range)
        written = container.get("resources") or {}
        for r in RESOURCES:
            low, high = getattr(limit_range.min, r), getattr(limit_range.max, r)
            # Each amount in the unit its own value was written in, as the user reads the stack file.
            asked = str((written.get("requests") or {}).get(r) or low)
            capped = str((written.get("limits") or {}).get(r) or high)
            if requests[r] < minimum[r]:
                problems.append(
                    Problem(
                        f"{where}.requests.{r}",
                        "is below the LimitRange min",
                        _fmt(r, requests[r], asked),
                        f">= {_fmt(r, minimum[r], low)}",
                    )
                )
            if limits[r] > maximum[r]:
                problems.append(
                    Problem(
                        f"{where}.limits.{r}",
                        "is above the LimitRange max",
                        _fmt(r, limits[r], capped),
                        f"<= {_fmt(r, maximum[r], high)}",
                    )
                )
            if requests[r] > limits[r]:
                problems.append(
                    Problem(
                        f"{where}.requests.{r}",
                        "is above its limit",
                        _fmt(r, requests[r], asked),
                        f"<= {_fmt(r, limits[r], capped)}",
                    )
                )
            elif requests[r] > 0 and limits[r] / requests[r] > ratio[r]:
                problems.append(
                    Problem(
                        f"{where}.{r}",
                        "limit/request ratio is above the LimitRange maxLimitRequestRatio",
                        f"{_fmt(r, limits[r], capped)}/{_fmt(r, requests[r], asked)} = "
                        f"{(limits[r] / requests[r]).quantize(Decimal('0.001')).normalize():f}",
                        f"at most {ratio[r]}",
                    )
                )
    return unique(problems)


def unique(problems: Iterable[Problem]) -> list[Problem]:
    """Drop repeated problems (one init container runs in every pod), keeping the first order."""
    return list(dict.fromkeys(problems))


def pod_totals(pod_spec: Mapping[str, Any], limit_range: LimitRangeSpec) -> dict[str, Decimal]:
    """Return what one pod counts against the quota: max(sum of containers, largest init container)."""
    totals: dict[str, Decimal] = {}
    effective = [(kind, effective_resources(c, limit_range)) for kind, c in _containers(pod_spec)]
    for r in RESOURCES:
        for side, index in (("requests", 0), ("limits", 1)):
            app = sum((res[index][r] for kind, res in effective if kind == "containers"), Decimal(0))
            init = max((res[index][r] for kind, res in effective if kind == "initContainers"), default=Decimal(0))
            totals[f"{side}.{r}"] = max(app, init)
    return totals


def check_quota(plans: Iterable[PodPlan], quota: QuotaSpec, limit_range: LimitRangeSpec) -> list[Problem]:
    """Return a problem per quota line that the worst case (every pod plus rollout surge) would exceed."""
    plans = list(plans)
    hard = quota.amounts()
    written = {line: value for line, value in quota.hard().items() if line not in ("pods", "persistentvolumeclaims")}
    used: dict[str, Decimal] = dict.fromkeys(hard, Decimal(0))
    shares: dict[str, list[str]] = {k: [] for k in hard}
    for plan in plans:
        pods = plan.replicas + plan.surge
        owner = plan.owner
        if plan.replicas_field:
            owner += f" ({plan.replicas_field} {plan.replicas} + surge {plan.surge})"
        for key, per_pod in pod_totals(plan.pod_spec, limit_range).items():
            used[key] += per_pod * pods
            shares[key].append(f"{owner} {pods} x {_fmt(key.split('.')[1], per_pod, written[key])}")
        used["pods"] += pods
        shares["pods"].append(f"{owner} {pods}")
        for claim in plan.claims:
            used["persistentvolumeclaims"] += plan.replicas
            used["requests.storage"] += parse_memory(claim) * plan.replicas
            shares["persistentvolumeclaims"].append(f"{plan.owner} {plan.replicas}")
            shares["requests.storage"].append(f"{plan.owner} {plan.replicas} x {claim}")
    problems = []
    for key, total in used.items():
        if total > hard[key]:
            resource = key.split(".")[-1]
            counted = key in ("pods", "persistentvolumeclaims")
            shown = str(int(total)) if counted else _fmt(resource, total, written[key])
            bound = str(int(hard[key])) if counted else _fmt(resource, hard[key], written[key])
            problems.append(
                Problem(
                    # The stack file's field (quota.requestsCpu), not the object's line (requests.cpu).
                    f"quota.{QuotaSpec.field_of(key)}",
                    "the worst case (all replicas plus rollout surge) exceeds the ResourceQuota",
                    f"{shown} ({'; '.join(shares[key])})",
                    f"at most {bound}",
                )
            )
    return problems


def check_routes(
    pools: Mapping[str, Sequence[str]],
    queues: Iterable[str],
    routes: Mapping[str, str],
    idle_pools: Collection[str] = (),
) -> list[Problem]:
    """Return a problem for every named or routed queue that no running pool consumes.

    ``idle_pools`` have 0 replicas and nothing that scales them up: a queue only they consume is
    consumed by no one, and its tasks pile up in Redis unseen.
    """
    consumed = {q for qs in pools.values() for q in qs}
    running = {q for name, qs in pools.items() if name not in idle_pools for q in qs}
    problems = []
    queues = list(queues)
    for i, queue in enumerate(queues):
        problems += check_queue_name(f"queues[{i}]", queue)
    for queue in sorted(set(queues) - consumed):
        problems.append(
            Problem(
                f"queues[{queue}]",
                "no pool consumes this queue",
                shown(queue),
                f"a pool listing it ({sorted(consumed)})",
            )
        )
    for queue in sorted((set(queues) | set(routes.values())) & consumed - running):
        owners = sorted(name for name, qs in pools.items() if queue in qs)
        problems.append(
            Problem(
                f"queues[{queue}]",
                f"only pools with 0 replicas consume this queue ({', '.join(owners)})",
                shown(queue),
                "a pool with replicas >= 1 that lists it (no autoscaler brings a 0-replica pool up)",
            )
        )
    for task, queue in sorted(routes.items()):
        problems += check_queue_name(f"taskRoutes.{task}", queue)
        if queue not in consumed:
            problems.append(
                Problem(
                    f"taskRoutes.{task}",
                    "routes to a queue no pool consumes",
                    shown(queue),
                    f"one of {sorted(consumed)}",
                )
            )
    return problems
