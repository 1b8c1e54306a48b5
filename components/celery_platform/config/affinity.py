"""Pod ``affinity``, judged whole as the API server judges it (k8s.io/kubernetes pkg/apis/core/validation).

The structure passes through to the pod spec as the user writes it, so every level is checked here:
its type, its keys (a key this module does not check is refused, never passed on unchecked), the
operators and their value counts, the weights, the label keys and values, the namespaces. The
name, key and label rules themselves live in :mod:`celery_platform.config.validation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from celery_platform.config.problems import Problem, shown
from celery_platform.config.validation import (
    check_dns_label,
    check_labels,
    check_qualified_name,
    check_subdomain,
    is_label_value,
)

Check = Callable[[str, Any], list[Problem]]

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_OPERATORS = (*SELECTOR_OPERATORS, "Gt", "Lt")
# Node field selectors: metadata.name is the only field the API server takes.
NODE_FIELDS = ("metadata.name",)


def _members(members: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A check of a mapping whose keys are exactly ``members`` (each with its own check)."""

    def check(field: str, value: Any) -> list[Problem]:
        if not isinstance(value, Mapping):
            return [Problem(field, "is not a mapping", shown(value), f"a mapping with keys {', '.join(members)}")]
        problems = [
            Problem(f"{field}.{key}", "is not a key this program checks", shown(key), ", ".join(members))
            for key in value
            if key not in members
        ]
        for key, member in members.items():
            if key in value:
                if value[key] is None:
                    problems.append(Problem(f"{field}.{key}", "is null", "null", "leave the key out"))
                else:
                    problems += member(f"{field}.{key}", value[key])
            elif key in required:
                problems.append(Problem(f"{field}.{key}", "is required", "missing", "set it"))
        return problems

    return check


def _list_of(item: Check, non_empty: bool = False) -> Check:
    """A check of a list, each item by ``item``."""

    def check(field: str, value: Any) -> list[Problem]:
        if not isinstance(value, list | tuple):
            return [Problem(field, "is not a list", shown(value), "a list")]
        if non_empty and not value:
            return [Problem(field, "is empty", "[]", "at least one entry")]
        return [p for i, entry in enumerate(value) for p in item(f"{field}[{i}]", entry)]

    return check


def _string(field: str, value: Any) -> list[Problem]:
    return [] if isinstance(value, str) else [Problem(field, "is not a string", shown(value), "a string")]


def _label_value(field: str, value: Any) -> list[Problem]:
    if is_label_value(value):
        return []
    return [
        Problem(
            field,
            "not a valid label value",
            shown(value),
            "at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends, or empty",
        )
    ]


def _weight(field: str, value: Any) -> list[Problem]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return []
    return [Problem(field, "not a weight", shown(value), "a whole number from 1 to 100")]


def _requirement(operators: tuple[str, ...], value_check: Check) -> Check:
    """A match expression: a key, an operator and the values that operator takes (ValidateNodeSelectorRequirement)."""
    shape = _members({"key": _string, "operator": _string, "values": _list_of(value_check)}, ("key", "operator"))

    def check(field: str, value: Any) -> list[Problem]:
        problems = shape(field, value)
        if problems:
            return problems
        problems = check_qualified_name(f"{field}.key", value["key"])
        operator, count = value["operator"], len(value.get("values") or ())
        if operator not in operators:
            return [*problems, Problem(f"{field}.operator", "unknown operator", shown(operator), ", ".join(operators))]
        if operator in ("In", "NotIn") and count == 0:
            problems.append(Problem(f"{field}.values", f"is empty with {operator}", "[]", "at least one value"))
        if operator in ("Exists", "DoesNotExist") and count:
            problems.append(Problem(f"{field}.values", f"must be empty with {operator}", shown(value["values"]), "[]"))
        if operator in ("Gt", "Lt") and count != 1:
            problems.append(Problem(f"{field}.values", f"{operator} takes exactly one value", f"{count}", "one"))
        return problems

    return check


def _field_requirement(field: str, value: Any) -> list[Problem]:
    """A node field selector (ValidateNodeFieldSelectorRequirement): metadata.name In/NotIn one node name."""
    shape = _members({"key": _string, "operator": _string, "values": _list_of(check_subdomain)}, ("key", "operator"))
    problems = shape(field, value)
    if problems:
        return problems
    if value["key"] not in NODE_FIELDS:
        problems.append(Problem(f"{field}.key", "not a node field", shown(value["key"]), " or ".join(NODE_FIELDS)))
    if value["operator"] not in ("In", "NotIn"):
        problems.append(Problem(f"{field}.operator", "unknown operator", shown(value["operator"]), "In or NotIn"))
    elif len(value.get("values") or ()) != 1:
        problems.append(Problem(f"{field}.values", "takes exactly one node name", shown(value.get("values")), "one"))
    return problems


def _node_term(label_values: Check) -> Check:
    return _members(
        {
            "matchExpressions": _list_of(_requirement(NODE_OPERATORS, label_values)),
            "matchFields": _list_of(_field_requirement),
        }
    )


# A preferred node term may name label values no node can have (it may still place the pod); a required one not.
_NODE_AFFINITY = _members(
    {
        "requiredDuringSchedulingIgnoredDuringExecution": _members(
            {"nodeSelectorTerms": _list_of(_node_term(_label_value), non_empty=True)}, ("nodeSelectorTerms",)
        ),
        "preferredDuringSchedulingIgnoredDuringExecution": _list_of(
            _members({"weight": _weight, "preference": _node_term(_string)}, ("weight",))
        ),
    }
)

_LABEL_SELECTOR = _members(
    {
        "matchLabels": check_labels,
        "matchExpressions": _list_of(_requirement(SELECTOR_OPERATORS, _label_value)),
    }
)


def _topology_key(field: str, value: Any) -> list[Problem]:
    return check_qualified_name(field, value, "topology key (a node label key)")


_POD_TERM = _members(
    {
        "labelSelector": _LABEL_SELECTOR,
        "namespaceSelector": _LABEL_SELECTOR,
        "namespaces": _list_of(check_dns_label),
        "topologyKey": _topology_key,
    },
    ("topologyKey",),
)

_POD_AFFINITY = _members(
    {
        "requiredDuringSchedulingIgnoredDuringExecution": _list_of(_POD_TERM),
        "preferredDuringSchedulingIgnoredDuringExecution": _list_of(
            _members({"weight": _weight, "podAffinityTerm": _POD_TERM}, ("weight", "podAffinityTerm"))
        ),
    }
)

AFFINITY = _members({"nodeAffinity": _NODE_AFFINITY, "podAffinity": _POD_AFFINITY, "podAntiAffinity": _POD_AFFINITY})


def check_affinity(field: str, affinity: Any) -> list[Problem]:
    """Return every problem of a pod ``affinity``, at every level, as the API server would find them."""
    return AFFINITY(field, affinity)
