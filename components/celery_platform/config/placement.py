"""Where pods may run: tolerations of node taints and topology spread constraints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery_platform.config.problems import Problem, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.validation import check_count, check_qualified_name, is_label_value

# The API server takes an empty operator as Equal.
TOLERATION_OPERATORS = ("Equal", "Exists", "")
TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
SPREAD_WHEN = ("ScheduleAnyway", "DoNotSchedule")
NODE_INCLUSION_POLICIES = ("Honor", "Ignore")
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
        if self.key:
            problems += check_qualified_name(f"{field}.key", self.key, "taint key")
        if self.operator != "Exists" and not is_label_value(self.value):
            problems.append(
                Problem(
                    f"{field}.value",
                    "not a valid taint value",
                    shown(self.value),
                    "a label value: at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends, or empty",
                )
            )
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
    node_taints_policy: str = ""
    """``Honor``: nodes whose taints the pod does not tolerate are no domain of the spread (a tainted GPU pool
    then cannot hold a ``DoNotSchedule`` rule's pods Pending); ``Ignore``: they count. Default: ``""``
    (the API server's default, ``Ignore``)."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the constraint."""
        # The API server only needs a non-empty key; a key that no node label can have never spreads anything.
        problems = check_qualified_name(f"{field}.topologyKey", self.topology_key, "node label key")
        problems += check_count(f"{field}.maxSkew", self.max_skew, 1)
        if self.when_unsatisfiable not in SPREAD_WHEN:
            problems.append(
                Problem(
                    f"{field}.whenUnsatisfiable", "unknown", shown(self.when_unsatisfiable), " or ".join(SPREAD_WHEN)
                )
            )
        # The API server's NodeInclusionPolicy values (pkg/apis/core/validation: Honor, Ignore).
        if self.node_taints_policy not in ("", *NODE_INCLUSION_POLICIES):
            problems.append(
                Problem(
                    f"{field}.nodeTaintsPolicy",
                    "unknown",
                    shown(self.node_taints_policy),
                    " or ".join(NODE_INCLUSION_POLICIES) + ", or unset",
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
            **({"nodeTaintsPolicy": self.node_taints_policy} if self.node_taints_policy else {}),
        }


# ScheduleAnyway: spreading is a preference; a one-node dev cluster must still schedule.
DEFAULT_SPREAD = tuple(SpreadConstraint(topology_key=key) for key in DEFAULT_SPREAD_KEYS)


def check_spread(field: str, constraints: tuple[SpreadConstraint, ...]) -> list[Problem]:
    """Check the constraints, and that no {topologyKey, whenUnsatisfiable} pair is there twice."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for i, spread in enumerate(constraints):
        problems += spread.validate(f"{field}[{i}]")
        pair = (spread.topology_key, spread.when_unsatisfiable)
        if pair in seen:
            problems.append(
                Problem(
                    f"{field}[{i}]",
                    "repeats a {topologyKey, whenUnsatisfiable} pair",
                    shown(f"{pair[0]}, {pair[1]}"),
                    "one constraint per topology key and whenUnsatisfiable",
                )
            )
        seen.add(pair)
    return problems
