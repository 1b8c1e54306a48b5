"""Plain data for the namespace guardrails: the LimitRange and ResourceQuota as numbers we can check.

The namespace component renders these into Kubernetes objects; the admission arithmetic in
``celery_platform.builders.admission`` checks every pod against the same objects before ``pulumi up``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from celery_platform.config.problems import Problem, shown
from celery_platform.config.quantities import format_cpu, format_memory, parse_cpu, parse_memory
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import INT32_MAX, check_cpu, check_memory, check_ratio


@args_schema
@dataclass(frozen=True, kw_only=True)
class Resources:
    """A CPU and a memory quantity, such as a request or a limit."""

    cpu: str
    """CPU quantity, e.g. ``"400m"``."""
    memory: str
    """Memory quantity, e.g. ``"512Mi"``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of both quantities, named under ``field``."""
        return check_cpu(f"{field}.cpu", self.cpu) + check_memory(f"{field}.memory", self.memory)

    def amounts(self) -> dict[str, Decimal]:
        """Return ``{"cpu": cores, "memory": bytes}``; call only after ``validate`` found nothing."""
        return {"cpu": parse_cpu(self.cpu), "memory": parse_memory(self.memory)}

    def to_k8s(self) -> dict[str, str]:
        """Return the Kubernetes ``{"cpu": ..., "memory": ...}`` mapping."""
        return {"cpu": self.cpu, "memory": self.memory}


@args_schema
@dataclass(frozen=True, kw_only=True)
class Ratio:
    """maxLimitRequestRatio per resource: a limit may be at most this many times its request."""

    cpu: Decimal = Decimal(2)
    """CPU limit/request bound. Default: ``2``."""
    memory: Decimal = Decimal(2)
    """Memory limit/request bound. Default: ``2``."""

    def to_k8s(self) -> dict[str, str]:
        """Return the ratios as the strings Kubernetes expects (``"1.5"``)."""
        return {"cpu": _decimal_text(self.cpu), "memory": _decimal_text(self.memory)}


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _check_order(field: str, small_name: str, small: Resources, big_name: str, big: Resources) -> list[Problem]:
    problems = []
    for resource, small_value in small.amounts().items():
        big_value = big.amounts()[resource]
        if small_value > big_value:
            problems.append(
                Problem(
                    f"{field}.{small_name}.{resource}",
                    f"is above {big_name}.{resource}",
                    shown(getattr(small, resource)),
                    f"at most {getattr(big, resource)!r}",
                )
            )
    return problems


@args_schema
@dataclass(frozen=True, kw_only=True)
class LimitRangeSpec:
    """Per-container defaults and bounds that the LimitRanger admission plugin enforces."""

    default_request: Resources = field(default_factory=lambda: Resources(cpu="100m", memory="128Mi"))
    """Request given to a container that sets none. Default: ``100m`` / ``128Mi``."""
    default: Resources = field(default_factory=lambda: Resources(cpu="200m", memory="256Mi"))
    """Limit given to a container that sets none. Default: ``200m`` / ``256Mi``."""
    min: Resources = field(default_factory=lambda: Resources(cpu="10m", memory="16Mi"))
    """Smallest request allowed. Default: ``10m`` / ``16Mi``."""
    max: Resources = field(default_factory=lambda: Resources(cpu="4", memory="8Gi"))
    """Largest limit allowed. Default: ``4`` / ``8Gi``."""
    max_limit_request_ratio: Ratio = field(default_factory=Ratio)
    """Largest limit/request ratio. Default: ``2`` for CPU and memory."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem: bad quantities, a ratio below 1, and bounds out of order."""
        parts = {
            "defaultRequest": self.default_request,
            "default": self.default,
            "min": self.min,
            "max": self.max,
        }
        problems = [p for name, res in parts.items() for p in res.validate(f"{field}.{name}")]
        problems += check_ratio(f"{field}.maxLimitRequestRatio.cpu", self.max_limit_request_ratio.cpu)
        problems += check_ratio(f"{field}.maxLimitRequestRatio.memory", self.max_limit_request_ratio.memory)
        if problems:
            return problems
        # The API server refuses a LimitRange whose own defaults break its bounds; say so at preview.
        problems += _check_order(field, "min", self.min, "defaultRequest", self.default_request)
        problems += _check_order(field, "defaultRequest", self.default_request, "default", self.default)
        problems += _check_order(field, "default", self.default, "max", self.max)
        ratio = {"cpu": self.max_limit_request_ratio.cpu, "memory": self.max_limit_request_ratio.memory}
        requests, limits = self.default_request.amounts(), self.default.amounts()
        for resource, bound in ratio.items():
            if requests[resource] > 0 and limits[resource] / requests[resource] > bound:
                problems.append(
                    Problem(
                        f"{field}.default.{resource}",
                        "the defaults alone break maxLimitRequestRatio",
                        f"{getattr(self.default, resource)!r} over {getattr(self.default_request, resource)!r}",
                        f"a ratio of at most {bound}",
                    )
                )
        # The API server also refuses a ratio above max/min: no container could use it (ValidateLimitRange).
        lowest, highest = self.min.amounts(), self.max.amounts()
        for resource, bound in ratio.items():
            if bound > highest[resource] / lowest[resource]:
                problems.append(
                    Problem(
                        f"{field}.maxLimitRequestRatio.{resource}",
                        f"is above max/min ({getattr(self.max, resource)} / {getattr(self.min, resource)})",
                        shown(bound),
                        f"at most {(highest[resource] / lowest[resource]).quantize(Decimal('0.001')).normalize():f}",
                    )
                )
        return problems

    def to_k8s_limits(self) -> list[dict[str, Any]]:
        """Return ``spec.limits`` of the LimitRange object."""
        return [
            {
                "type": "Container",
                "default": self.default.to_k8s(),
                "defaultRequest": self.default_request.to_k8s(),
                "min": self.min.to_k8s(),
                "max": self.max.to_k8s(),
                "maxLimitRequestRatio": self.max_limit_request_ratio.to_k8s(),
            }
        ]


# Each ResourceQuota line and the QuotaSpec field (as the stack file spells it) that sets it.
QUOTA_FIELDS = {
    "requests.cpu": "requestsCpu",
    "requests.memory": "requestsMemory",
    "limits.cpu": "limitsCpu",
    "limits.memory": "limitsMemory",
    "pods": "pods",
    "persistentvolumeclaims": "persistentVolumeClaims",
    "requests.storage": "requestsStorage",
}


@args_schema
@dataclass(frozen=True, kw_only=True)
class QuotaSpec:
    """The namespace's ResourceQuota: the total that every pod together may request and use."""

    requests_cpu: str = "4"
    """Sum of CPU requests. Default: ``"4"``."""
    requests_memory: str = "8Gi"
    """Sum of memory requests. Default: ``"8Gi"``."""
    limits_cpu: str = "8"
    """Sum of CPU limits. Default: ``"8"``."""
    limits_memory: str = "16Gi"
    """Sum of memory limits. Default: ``"16Gi"``."""
    pods: int = 40
    """Number of pods. Default: ``40``."""
    persistent_volume_claims: int = 4
    """Number of PVCs. Default: ``4``."""
    requests_storage: str = "20Gi"
    """Sum of PVC storage requests. Default: ``"20Gi"``."""

    def validate(self, field: str) -> list[Problem]:
        """Return every problem with the quota's quantities and counts."""
        problems = check_cpu(f"{field}.requestsCpu", self.requests_cpu, allow_zero=True)
        problems += check_memory(f"{field}.requestsMemory", self.requests_memory, allow_zero=True)
        problems += check_cpu(f"{field}.limitsCpu", self.limits_cpu, allow_zero=True)
        problems += check_memory(f"{field}.limitsMemory", self.limits_memory, allow_zero=True)
        problems += check_memory(f"{field}.requestsStorage", self.requests_storage, allow_zero=True)
        for name, count in (("pods", self.pods), ("persistentVolumeClaims", self.persistent_volume_claims)):
            if count < 0:
                problems.append(
                    Problem(f"{field}.{name}", "a count cannot be negative", shown(count), "a whole number >= 0")
                )
            elif count > INT32_MAX:
                problems.append(Problem(f"{field}.{name}", "too large", shown(count), f"a whole number <= {INT32_MAX}"))
        return problems

    def hard(self) -> dict[str, str]:
        """Return ``spec.hard`` of the ResourceQuota object."""
        return {
            "requests.cpu": self.requests_cpu,
            "requests.memory": self.requests_memory,
            "limits.cpu": self.limits_cpu,
            "limits.memory": self.limits_memory,
            "pods": str(self.pods),
            "persistentvolumeclaims": str(self.persistent_volume_claims),
            "requests.storage": self.requests_storage,
        }

    @staticmethod
    def field_of(line: str) -> str:
        """Return the config field (camelCase) that sets a ``spec.hard`` line: ``requests.cpu`` -> ``requestsCpu``."""
        return QUOTA_FIELDS[line]

    def amounts(self) -> dict[str, Decimal]:
        """Return the hard limits as numbers, keyed like ``spec.hard``."""
        return {
            "requests.cpu": parse_cpu(self.requests_cpu),
            "requests.memory": parse_memory(self.requests_memory),
            "limits.cpu": parse_cpu(self.limits_cpu),
            "limits.memory": parse_memory(self.limits_memory),
            "pods": Decimal(self.pods),
            "persistentvolumeclaims": Decimal(self.persistent_volume_claims),
            "requests.storage": parse_memory(self.requests_storage),
        }


__all__ = ["LimitRangeSpec", "QuotaSpec", "Ratio", "Resources", "format_cpu", "format_memory"]
