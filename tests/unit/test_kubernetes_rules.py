"""The Kubernetes name, key and label rules (config/validation.py) and the fields that use them, at their edges.

Each rule is the 1.37 API server's (k8s.io/apimachinery util/validation, k8s.io/kubernetes
pkg/apis/core/validation); tests/cluster/test_agreement_podfields.py proves the same verdicts against
the real server. Here: the edges by example, and Hypothesis properties near them.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_platform.config.affinity import check_affinity
from celery_platform.config.monitoring import MonitoringSpec
from celery_platform.config.placement import SpreadConstraint, Toleration, check_spread
from celery_platform.config.problems import Problem, ValidationError
from celery_platform.config.stack import parse_stack_config
from celery_platform.config.validation import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
    check_annotations,
    check_config_map_key,
    check_env_var_name,
    check_labels,
    is_label_value,
    is_qualified_name,
)
from celery_platform.config.volumes import VolumeMount, kubelet_path

BASE = {
    "image": "registry.example.com/app:1.0.0",
    "databaseUrl": "postgresql://app:pw@db:5432/app",
    "pools": yaml.safe_dump([{"name": "main", "queues": ["default"]}]),
    "egress": yaml.safe_dump([{"cidr": "10.0.0.0/8", "ports": [5432]}]),
}

NAME = st.from_regex(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
PREFIX = st.from_regex(r"[a-z0-9](?:[-a-z0-9]{0,8}[a-z0-9])?(?:\.[a-z0-9]{1,8}){0,3}", fullmatch=True)
# Characters that no name, key or label admits: whitespace, controls, non-ASCII (Kelvin sign and dotted I too).
FOREIGN = st.sampled_from([" ", "\t", "\n", "\r", "\x00", "\x7f", "\u00a0", "\u2028", "é", "\u212a", "\u0130", "😀"])


def refused(overrides: dict[str, Any]) -> list[Problem]:
    try:
        parse_stack_config({**BASE, **overrides})
    except ValidationError as err:
        return err.problems
    return []


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


# --- qualified names and label values --------------------------------------------------------------


@given(NAME, st.one_of(st.none(), PREFIX))
def test_a_valid_key_with_a_trailing_newline_or_a_foreign_character_is_refused(name: str, prefix: str | None) -> None:
    key = f"{prefix}/{name}" if prefix else name
    assert is_qualified_name(key)
    assert not is_qualified_name(key + "\n")
    assert not is_qualified_name(" " + key)


@given(NAME, FOREIGN, st.integers(0, 30))
def test_a_key_or_label_value_with_any_foreign_character_is_refused(name: str, char: str, at: int) -> None:
    broken = name[:at] + char + name[at:]
    assert not is_qualified_name(broken)
    assert not is_label_value(broken)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("a" * 63, True),
        ("a" * 64, False),
        ("a" * 253 + "/x", True),
        ("a" * 254 + "/x", False),
        ("/x", False),  # the prefix part must not be empty
        ("example.com/", False),
        ("a/b/c", False),
        ("Example.com/x", False),  # the prefix is a lowercase subdomain
        ("example.com/X_y.z", True),
        ("-x", False),
        ("x-", False),
        ("", False),
    ],
)
def test_qualified_name_edges(key: str, ok: bool) -> None:
    assert is_qualified_name(key) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("a" * 63, True), ("a" * 64, False), ("a.b_c-d", True), ("a b", False), ("a\n", False), ("_a", False)],
)
def test_label_value_edges(value: str, ok: bool) -> None:
    assert is_label_value(value) is ok


def test_label_problems_name_the_key_and_show_the_value() -> None:
    [problem] = check_labels("pod.labels", {"team": "kube prometheus"})
    assert problem.field == "pod.labels.team"
    assert "kube prometheus" in problem.got


# --- annotations: keys whatever their case, and the 256 KiB total -----------------------------------


@pytest.mark.parametrize(("key", "ok"), [("Example.COM/X", True), ("\u212a", True), ("\u0130x", True), ("é", False)])
def test_an_annotation_key_is_a_qualified_name_once_lowercased_as_go_does(key: str, ok: bool) -> None:
    # Go's strings.ToLower maps the Kelvin sign to "k" and the dotted capital I to "i".
    assert (check_annotations("a", {key: "v"}) == []) is ok


@given(st.integers(-3, 3), st.sampled_from(["v", "é", "😀"]))
def test_annotations_are_refused_past_256_kib_of_utf8_bytes(delta: int, char: str) -> None:
    width = len(char.encode())
    room = TOTAL_ANNOTATION_SIZE_LIMIT_B - 1  # the key "k"
    value = (
        char * (room // width) + "v" * (room % width + delta)
        if room % width + delta >= 0
        else char * (room // width - 1)
    )
    size = 1 + len(value.encode())
    problems = check_annotations("pod.annotations", {"k": value})
    assert bool(problems) is (size > TOTAL_ANNOTATION_SIZE_LIMIT_B), size
    if problems:
        assert problems[0].field == "pod.annotations" and "262144" in problems[0].expected


# --- env var names (IsRelaxedEnvVarName, GA since 1.34) and ConfigMap keys ---------------------------


@given(st.text(alphabet=[c for c in string.printable if c not in "=\t\n\r\x0b\x0c"], min_size=1))
def test_any_printable_ascii_env_name_without_equals_is_taken(name: str) -> None:
    assert check_env_var_name("env", name) == []


@given(st.text(max_size=5), st.sampled_from(["=", "\n", "\t", "\x00", "\x7f", "é", "\u00a0"]), st.text(max_size=5))
def test_an_env_name_with_equals_a_control_or_non_ascii_character_is_refused(a: str, char: str, b: str) -> None:
    assert check_env_var_name("env", a + char + b)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        (".", False),
        ("..", False),
        ("..a", False),
        (".a", True),
        ("a..", True),
        ("a" * 253, True),
        ("a" * 254, False),
        ("a/b", False),
        ("a\n", False),
        ("", False),
    ],
)
def test_config_map_key_edges(key: str, ok: bool) -> None:
    assert (check_config_map_key("k", key) == []) is ok


# --- the issue's examples, end to end through the stack config ---------------------------------------


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        ({"env": [{"name": "SMTP_HOST\n", "value": "x"}]}, "pod.env[0].name"),
        ({"envFrom": [{"configMap": "app\n"}]}, "pod.envFrom[0].configMap"),
        ({"nodeSelector": {"pool\n": "a"}}, "pod.nodeSelector.pool\n"),
        ({"labels": {"team": "a\n"}}, "pod.labels.team"),
        ({"annotations": {"note\n": "a"}}, "pod.annotations.note\n"),
        ({"priorityClassName": "high\n"}, "pod.priorityClassName"),
        ({"serviceAccount": {"name": "app\n"}}, "pod.serviceAccount.name"),
        ({"tolerations": [{"key": "pool\n", "operator": "Exists"}]}, "pod.tolerations[0].key"),
        ({"tolerations": [{"key": "pool", "value": "celery pool"}]}, "pod.tolerations[0].value"),
        ({"env": [{"name": "A", "secretKeyRef": {"name": "s", "key": ".."}}]}, "pod.env[0].secretKeyRef.key"),
        (
            {"env": [{"name": "A", "configMapKeyRef": {"name": "c", "key": "k" * 254}}]},
            "pod.env[0].configMapKeyRef.key",
        ),
        ({"annotations": {"a": "v" * TOTAL_ANNOTATION_SIZE_LIMIT_B}}, "pod.annotations"),
    ],
)
def test_the_issue_values_are_refused_naming_the_field(pod: dict[str, Any], field: str) -> None:
    assert field in fields(refused({"pod": pod}))


def test_the_keda_operator_pod_labels_and_the_monitoring_labels_are_kubernetes_labels() -> None:
    assert "kedaOperator.podLabels.app\n" in fields(refused({"kedaOperator": {"podLabels": {"app\n": "keda"}}}))
    got = fields(MonitoringSpec(selector_labels={"release": "kube prometheus"}).validate("monitoring"))
    assert got == ["monitoring.selectorLabels.release"]
    for label in ("grafana dashboard", "-x", "é", "grafana_dashboard\n", ""):
        assert fields(MonitoringSpec(dashboard_label=label).validate("monitoring")) == ["monitoring.dashboardLabel"]
    assert MonitoringSpec(dashboard_label="grafana.com/dashboard").validate("monitoring") == []


# --- affinity, whole --------------------------------------------------------------------------------

RSI = "requiredDuringSchedulingIgnoredDuringExecution"
PSI = "preferredDuringSchedulingIgnoredDuringExecution"
NODE_TERM = {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["celery"]}]}
POD_TERM = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}
GOOD = {
    "nodeAffinity": {
        RSI: {"nodeSelectorTerms": [NODE_TERM]},
        PSI: [{"weight": 100, "preference": NODE_TERM}],
    },
    "podAntiAffinity": {PSI: [{"weight": 1, "podAffinityTerm": POD_TERM}]},
    "podAffinity": {RSI: [{**POD_TERM, "namespaces": ["apps"]}]},
}
REQUIRED = f"nodeAffinity.{RSI}"


def test_a_whole_valid_affinity_is_taken() -> None:
    assert check_affinity("affinity", GOOD) == []


@pytest.mark.parametrize(
    ("affinity", "field"),
    [
        ({"nodeAffinity": []}, "affinity.nodeAffinity"),
        ({"nodeAffinity": {RSI: {"nodeSelectorTerms": []}}}, REQUIRED),
        ({"nodeAffinity": {RSI: {}}}, REQUIRED),
        (
            {"nodeAffinity": {RSI: {"nodeSelectorTerms": [{"x": 1}]}}},
            REQUIRED,
        ),
        (
            {"nodeAffinity": {PSI: [{"weight": 0, "preference": {}}]}},
            f"nodeAffinity.{PSI}[0].weight",
        ),
        (
            {"podAffinity": {PSI: [{"weight": 101, "podAffinityTerm": POD_TERM}]}},
            "weight",
        ),
        ({"podAffinity": {RSI: [{}]}}, "topologyKey"),
        (
            {"podAffinity": {RSI: [{**POD_TERM, "namespaces": ["Bad_NS"]}]}},
            "namespaces[0]",
        ),
        (
            {"podAffinity": {RSI: [{**POD_TERM, "matchLabelKeys": ["a"]}]}},
            "matchLabelKeys",
        ),
        ({"nodeAffinity": {"requiredDuringSchedulingRequiredDuringExecution": {}}}, "RequiredDuringExecution"),
        ({"podAffinity": None}, "affinity.podAffinity"),
        ({"podAffinity": {RSI: [{"topologyKey": "a b"}]}}, "topologyKey"),
    ],
)
def test_affinity_is_refused_at_any_level_naming_the_path(affinity: dict[str, Any], field: str) -> None:
    problems = check_affinity("affinity", affinity)
    assert problems and any(field in p.field for p in problems), problems


def _terms(expression: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {RSI: {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}


@pytest.mark.parametrize(
    ("operator", "values", "ok"),
    [
        ("In", ["a"], True),
        ("In", [], False),
        ("NotIn", None, False),
        ("Exists", None, True),
        ("Exists", ["a"], False),
        ("DoesNotExist", [], True),
        ("Gt", ["1"], True),
        ("Lt", ["1", "2"], False),
        ("Equals", ["a"], False),
        ("In", ["a b"], False),  # a required term's values are label values
        ("In", [1], False),
    ],
)
def test_node_selector_operators_take_their_value_counts(operator: str, values: list[Any] | None, ok: bool) -> None:
    expression: dict[str, Any] = {"key": "pool", "operator": operator}
    if values is not None:
        expression["values"] = values
    assert (check_affinity("affinity", _terms(expression)) == []) is ok


def test_a_preferred_node_term_may_name_a_value_no_label_has_as_the_api_server_allows() -> None:
    preferred = {
        "weight": 1,
        "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a b"]}]},
    }
    assert check_affinity("a", {"nodeAffinity": {PSI: [preferred]}}) == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "nodeAffinity",
        "podAffinity",
        "podAntiAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
        "matchExpressions",
        "matchFields",
        "weight",
        "preference",
        "podAffinityTerm",
        "topologyKey",
        "labelSelector",
        "namespaces",
        "key",
        "operator",
        "values",
    ]
)
SHAPED = st.recursive(
    JSON, lambda inner: st.dictionaries(KEYS, inner, max_size=3) | st.lists(inner, max_size=2), max_leaves=20
)


@given(st.dictionaries(KEYS, SHAPED, max_size=3))
def test_any_affinity_value_gets_problems_never_an_exception(affinity: dict[str, Any]) -> None:
    problems = check_affinity("pod.affinity", affinity)
    assert all(isinstance(p, Problem) and p.field.startswith("pod.affinity") for p in problems)


@settings(deadline=None)  # a whole stack config per example: no timing is asserted
@given(SHAPED)
def test_any_affinity_through_the_stack_config_is_one_clear_error_or_accepted(affinity: Any) -> None:
    for problem in refused({"pod": {"affinity": {"nodeAffinity": affinity}}}):
        assert problem.field.startswith("pod.affinity")


# --- tolerations and topology spread -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["celery pool", "a\n", "a" * 64, "-a"])
def test_a_toleration_value_is_a_label_value(value: str) -> None:
    assert fields(Toleration(key="pool", value=value).validate("t")) == ["t.value"]


def test_an_empty_toleration_operator_is_equal_as_the_api_server_takes_it() -> None:
    assert Toleration(key="pool", operator="", value="celery").validate("t") == []


def test_a_repeated_topology_key_and_when_unsatisfiable_pair_is_refused() -> None:
    zone = SpreadConstraint(topology_key="topology.kubernetes.io/zone")
    assert fields(check_spread("s", (zone, zone))) == ["s[1]"]
    other = SpreadConstraint(topology_key="topology.kubernetes.io/zone", when_unsatisfiable="DoNotSchedule")
    assert check_spread("s", (zone, other)) == []


@pytest.mark.parametrize(("skew", "ok"), [(0, False), (1, True), (2**31 - 1, True), (2**31, False)])
def test_max_skew_is_a_positive_int32(skew: int, ok: bool) -> None:
    assert (SpreadConstraint(topology_key="zone", max_skew=skew).validate("s") == []) is ok


# --- mount paths, where the kubelet mounts them -------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["//tmp", "/tmp/", "/./tmp", "///tmp", "//tmp/x", "/etc/../tmp", "//etc/celery-platform"]
)
def test_a_mount_path_over_the_platforms_own_is_refused_however_spelled(path: str) -> None:
    problems = VolumeMount(name="v", mount_path=path).validate("m")
    assert any("overlaps" in p.problem for p in problems), problems


@given(st.lists(st.sampled_from(["", ".", "tmp", "x", "..", "etc"]), min_size=1, max_size=5))
def test_any_path_the_kubelet_sees_at_or_under_tmp_is_refused(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    seen = kubelet_path(path)
    problems = VolumeMount(name="v", mount_path=path).validate("m")
    if seen == "/tmp" or seen.startswith("/tmp/") or seen == "/":
        assert problems
    if seen != (path.rstrip("/") or "/"):
        assert any("normalised" in p.problem for p in problems)


def test_two_mounts_at_the_same_kubelet_path_are_one_path_used_twice() -> None:
    pod = {
        "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
        "volumeMounts": [{"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/data/"}],
    }
    assert "pod.volumeMounts" in fields(refused({"pod": pod}))
