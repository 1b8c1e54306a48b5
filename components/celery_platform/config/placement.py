"""Where pods may run: tolerations of node taints and topology spread constraints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import check_label_key

TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
SPREAD_WHEN = ("ScheduleAnyway", "DoNotSchedule")
AFFINITY_KINDS = ("nodeAffinity", "podAffinity", "podAntiAffinity")
DEFAULT_SPREAD_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")


@args_schema
@dataclass(frozen=True, kw_only=True)
class Toleration:
    """A toleration of a node taint (a dedicated node pool)."""

    key: str = ""
    """The taint's key; empty with ``Exists`` tolerates every taint. Default: ``""``."""
    operator: str = "Equal"
    """``Equal`` (key and value match) or ``Exists`` (key matches). Default: ``"Equal"``."""
    value: str = ""
    """The taint's value, with ``Equal``. Default: ``""``."""
    effect: str = ""
    """``NoSchedule``, ``PreferNoSchedule``, ``NoExecute``, or empty for all. Default: ``""``."""
    toleration_seconds: int | None = None
    """How long a ``NoExecute`` taint is tolerated. Default: forever."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems, as the API server would find them."""
        problems = []
        if self.operator not in TOLERATION_OPERATORS:
            problems.append(Problem(f"{field}.operator", "unknown operator", shown(self.operator), "Equal or Exists"))
        if self.operator == "Exists" and self.value:
            problems.append(Problem(f"{field}.value", "must be empty with Exists", shown(self.value), "''"))
        if not self.key and self.operator != "Exists":
            problems.append(Problem(f"{field}.key", "an empty key needs operator Exists", "''", "a taint key"))
        if self.key and not check_label_key(self.key):
            problems.append(Problem(f"{field}.key", "not a valid taint key", shown(self.key), "a label key"))
        if self.effect not in TAINT_EFFECTS:
            problems.append(
                Problem(f"{field}.effect", "unknown effect", shown(self.effect), " or ".join(TAINT_EFFECTS[1:]))
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            problems.append(
                Problem(f"{field}.tolerationSeconds", "applies only to NoExecute", shown(self.effect), "NoExecute")
            )
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the pod spec toleration."""
        out: dict[str, Any] = {"operator": self.operator}
        for name, value in (("key", self.key), ("value", self.value), ("effect", self.effect)):
            if value:
                out[name] = value
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


@args_schema
@dataclass(frozen=True, kw_only=True)
class SpreadConstraint:
    """A topology spread constraint; the platform adds the pool's own label selector."""

    topology_key: str
    """Node label to spread over, e.g. ``topology.kubernetes.io/zone``. Required."""
    max_skew: int = 1
    """Largest allowed difference of pods between two domains. Default: ``1``."""
    when_unsatisfiable: str = "ScheduleAnyway"
    """``ScheduleAnyway`` (a preference) or ``DoNotSchedule`` (a rule). Default: ``"ScheduleAnyway"``."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the constraint."""
        problems = []
        if not check_label_key(self.topology_key):
            problems.append(
                Problem(f"{field}.topologyKey", "not a label key", shown(self.topology_key), "a node label")
            )
        if self.max_skew < 1:
            problems.append(Problem(f"{field}.maxSkew", "too small", shown(self.max_skew), "a whole number >= 1"))
        if self.when_unsatisfiable not in SPREAD_WHEN:
            problems.append(
                Problem(
                    f"{field}.whenUnsatisfiable", "unknown", shown(self.when_unsatisfiable), " or ".join(SPREAD_WHEN)
                )
            )
        return problems

    def to_k8s(self, selector: Mapping[str, str]) -> dict[str, Any]:
        """Return the pod spec constraint, selecting the pool's own pods."""
        return {
            "maxSkew": self.max_skew,
            "topologyKey": self.topology_key,
            "whenUnsatisfiable": self.when_unsatisfiable,
            "labelSelector": {"matchLabels": dict(selector)},
        }


# ScheduleAnyway: spreading is a preference; a one-node dev cluster must still schedule.
DEFAULT_SPREAD = tuple(SpreadConstraint(topology_key=key) for key in DEFAULT_SPREAD_KEYS)
