"""Every field that reaches Kubernetes: the program's verdict and the real API server's, value by value.

For each field class, Hypothesis generates values near the rule's edges (whitespace, newlines, Unicode,
lengths at and past the limit, empty lists, out-of-range numbers). Our side is ``parse_stack_config``
on the prod stack with the value in its key (what `pulumi preview` runs). The server's side is a
server-side dry-run (``dryRun=All``, strict field validation) of the rendered object carrying the value:
the prod render's celery-main Deployment with the value applied by the program's own builders
(``apply_to_pod``, ``pod_metadata``), the ServiceMonitor, PrometheusRule and dashboard ConfigMap with the
labels the monitoring component gives them, a NetworkPolicy with the KEDA operator's ingress peer. Both
verdicts must be the same, case by case; the table of cases per class is printed in the summary.

Known, deliberate differences are not generated (the program refuses what the server would take):
platform-owned env names and labels, ``system-`` priority classes, envFrom names ending in '-' (the
server checks them as generateName prefixes; no object has such a name), topology spread keys that are
no node label key, null inside affinity, the toleration operators Lt/Gt.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from apply_rendered import finish_render, render_stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.rest import ApiException

from celery_platform.config.env import PLATFORM_ENV
from celery_platform.config.podsettings import OWN_LABELS, apply_to_pod
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config, read_stack_config
from celery_platform.render.stack_files import stack_config
from celery_platform.resources._statefulset import pod_metadata
from tests.kube_testenv import dry_run_create

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

ROOT = Path(__file__).resolve().parents[2]
STACK = "prod"
NAMESPACE = "agree-podfields"
# The API server's TotalAnnotationSizeLimitB (apimachinery), written here as the server has it.
TOTAL_ANNOTATION_SIZE_LIMIT_B = 262144
EXAMPLES = 40  # per class: ~20 classes keep the whole module near a minute of dry-runs

Docs = list[dict[str, Any]]

# --------------------------------------------------------------------------- values near the edges

ODD = [" ", "\t", "\n", "\r", "\x00", "\x7f", "é", "\u212a", "\u0130", "ß", "\u00a0", "\u2028", "😀", "_", ".", "-"]
ODD += ["/", "=", ":", "A", "z", "0", "$", "{", "\\"]


def edgy(valid: st.SearchStrategy[str], limits: tuple[int, ...], pad: str = "a") -> st.SearchStrategy[str]:
    """Valid values, and the same values broken at one place: a character inserted, padded to a limit, cut."""

    def insert(args: tuple[str, str, int]) -> str:
        text, char, at = args
        at = min(at, len(text))
        return text[:at] + char + text[at:]

    def padded(args: tuple[str, int, int]) -> str:
        text, limit, delta = args
        return (text + pad * (limit + delta))[: limit + delta] if limit + delta > 0 else ""

    return st.one_of(
        valid,
        valid.map(lambda s: s + "\n"),
        st.tuples(valid, st.sampled_from(ODD), st.integers(0, 12)).map(insert),
        st.tuples(valid, st.sampled_from(limits), st.sampled_from([-1, 0, 1])).map(padded),
        st.tuples(st.sampled_from(limits), st.sampled_from([-1, 0, 1])).map(lambda a: "a" * (a[0] + a[1] - 1) + "z"),
        st.text(max_size=6),
        st.sampled_from(["", ".", "..", "..a", "-a", "a-", "a..b", "_a", "a_"]),
    )


LABEL = st.from_regex(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?", fullmatch=True)
SUBDOMAIN = st.from_regex(
    r"[a-z0-9](?:[-a-z0-9]{0,5}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,5}[a-z0-9])?){0,2}", fullmatch=True
)
DNS_LABEL = st.from_regex(r"[a-z0-9](?:[-a-z0-9]{0,6}[a-z0-9])?", fullmatch=True)
ENV_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True)
KEY = st.from_regex(r"[-._a-zA-Z0-9]{1,8}", fullmatch=True)

label_values = edgy(LABEL, (63,))
subdomains = edgy(SUBDOMAIN, (63, 253))
dns_labels = edgy(DNS_LABEL, (63,))
env_names = edgy(ENV_NAME, (1, 253))
config_map_keys = edgy(KEY, (253,))
qualified_names = st.one_of(
    edgy(LABEL, (63,)),
    st.tuples(edgy(SUBDOMAIN, (253,)), edgy(LABEL, (63,))).map("/".join),
    st.tuples(st.sampled_from(["", "a/b", "Example.com", "example.com/"]), LABEL).map("/".join),
)
# Annotation keys are qualified names whatever their case.
annotation_keys = st.one_of(qualified_names, qualified_names.map(str.upper))
# The total size: one annotation whose key and value are just within, at and just past 256 KiB.
annotation_values = st.one_of(
    st.text(max_size=8),
    st.sampled_from([-1, 0, 1]).map(lambda d: "v" * (TOTAL_ANNOTATION_SIZE_LIMIT_B - 1 + d)),
    st.sampled_from([-1, 0, 1]).map(lambda d: "é" * ((TOTAL_ANNOTATION_SIZE_LIMIT_B - 1) // 2) + "v" * (1 + d)),
)
numbers = st.sampled_from([-1, 0, 1, 2, 50, 99, 100, 101, 2**31 - 1, 2**31])


def _selector_requirement(values: st.SearchStrategy[str], operators: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"key": qualified_names, "operator": st.sampled_from(operators)},
        optional={"values": st.lists(values, max_size=2)},
    )


NODE_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Equals", "in", ""]
node_term = st.fixed_dictionaries(
    {},
    optional={
        "matchExpressions": st.lists(_selector_requirement(label_values, NODE_OPERATORS), max_size=2),
        "matchFields": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.sampled_from(["metadata.name", "metadata.uid", "spec.nodeName"]),
                    "operator": st.sampled_from(["In", "NotIn", "Exists"]),
                },
                optional={"values": st.lists(subdomains, max_size=2)},
            ),
            max_size=1,
        ),
    },
)
label_selector = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(qualified_names, label_values, max_size=2),
        "matchExpressions": st.lists(
            _selector_requirement(label_values, ["In", "NotIn", "Exists", "DoesNotExist", "Gt"]), max_size=2
        ),
    },
)
pod_term = st.fixed_dictionaries(
    {"topologyKey": qualified_names},
    optional={
        "labelSelector": label_selector,
        "namespaceSelector": label_selector,
        "namespaces": st.lists(dns_labels, max_size=2),
    },
)
pod_affinity = st.fixed_dictionaries(
    {},
    optional={
        "requiredDuringSchedulingIgnoredDuringExecution": st.lists(pod_term, max_size=2),
        "preferredDuringSchedulingIgnoredDuringExecution": st.lists(
            st.fixed_dictionaries({"weight": numbers, "podAffinityTerm": pod_term}), max_size=2
        ),
    },
)
affinities = st.fixed_dictionaries(
    {},
    optional={
        "nodeAffinity": st.fixed_dictionaries(
            {},
            optional={
                "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries(
                    {"nodeSelectorTerms": st.lists(node_term, max_size=2)}
                ),
                "preferredDuringSchedulingIgnoredDuringExecution": st.lists(
                    st.fixed_dictionaries({"weight": numbers}, optional={"preference": node_term}), max_size=2
                ),
            },
        ),
        "podAffinity": pod_affinity,
        "podAntiAffinity": pod_affinity,
    },
)
spread = st.lists(
    st.fixed_dictionaries(
        {
            "topologyKey": st.sampled_from(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]),
            "maxSkew": numbers,
            "whenUnsatisfiable": st.sampled_from(["ScheduleAnyway", "DoNotSchedule"]),
        },
        optional={"nodeTaintsPolicy": st.sampled_from(["Honor", "Ignore", "", "honor", "Always"])},
    ),
    max_size=3,
)

# --------------------------------------------------------------------------- where each value goes


@dataclass(frozen=True)
class FieldClass:
    """A field class: its values, the stack config that carries one, and the kinds the value lands on."""

    name: str
    values: st.SearchStrategy[Any]
    config: Callable[[Any], dict[str, Any]]
    kinds: tuple[str, ...] = ("Deployment",)
    keep: Callable[[Any], bool] = lambda _value: True


def _pod(make: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {"pod": make(value)}


def _monitoring(make: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {"monitoring": make(value)}


def _no_trailing_dash(name: str) -> bool:
    # The server checks an envFrom name as a generateName prefix (ValidateSecretName(name, prefix=true)), which
    # may end in '-'; no Secret or ConfigMap can have such a name, so the program refuses it: a known difference.
    return not name.endswith("-")


CLASSES = [
    FieldClass(
        "env.name",
        env_names,
        _pod(lambda v: {"env": [{"name": v, "secretKeyRef": {"name": "app", "key": "k"}}]}),
        keep=lambda v: v not in PLATFORM_ENV,
    ),
    FieldClass("envFrom.prefix", env_names, _pod(lambda v: {"envFrom": [{"configMap": "app", "prefix": v}]})),
    FieldClass("envFrom.secret", subdomains, _pod(lambda v: {"envFrom": [{"secret": v}]}), keep=_no_trailing_dash),
    FieldClass(
        "envFrom.configMap", subdomains, _pod(lambda v: {"envFrom": [{"configMap": v}]}), keep=_no_trailing_dash
    ),
    FieldClass(
        "secretKeyRef.name",
        subdomains,
        _pod(lambda v: {"env": [{"name": "A", "secretKeyRef": {"name": v, "key": "k"}}]}),
    ),
    FieldClass(
        "secretKeyRef.key",
        config_map_keys,
        _pod(lambda v: {"env": [{"name": "A", "secretKeyRef": {"name": "app", "key": v}}]}),
    ),
    FieldClass(
        "configMapKeyRef.key",
        config_map_keys,
        _pod(lambda v: {"env": [{"name": "A", "configMapKeyRef": {"name": "app", "key": v}}]}),
    ),
    FieldClass("nodeSelector.key", qualified_names, _pod(lambda v: {"nodeSelector": {v: "x"}})),
    FieldClass("nodeSelector.value", label_values, _pod(lambda v: {"nodeSelector": {"pool": v}})),
    FieldClass("labels.key", qualified_names, _pod(lambda v: {"labels": {v: "x"}}), keep=lambda v: v not in OWN_LABELS),
    FieldClass("labels.value", label_values, _pod(lambda v: {"labels": {"team": v}})),
    FieldClass("annotations.key", annotation_keys, _pod(lambda v: {"annotations": {v: "x"}})),
    FieldClass("annotations.size", annotation_values, _pod(lambda v: {"annotations": {"a": v}})),
    FieldClass(
        "priorityClassName",
        subdomains,
        _pod(lambda v: {"priorityClassName": v}),
        keep=lambda v: not v.startswith("system-"),
    ),
    FieldClass("serviceAccount.name", subdomains, _pod(lambda v: {"serviceAccount": {"name": v}})),
    FieldClass("tolerations.key", qualified_names, _pod(lambda v: {"tolerations": [{"key": v, "operator": "Exists"}]})),
    FieldClass("tolerations.value", label_values, _pod(lambda v: {"tolerations": [{"key": "pool", "value": v}]})),
    FieldClass("affinity", affinities, _pod(lambda v: {"affinity": v})),
    FieldClass("topologySpread", spread, _pod(lambda v: {"topologySpread": v})),
    FieldClass(
        "kedaOperator.podLabels",
        st.dictionaries(qualified_names, label_values, min_size=1, max_size=2),
        lambda v: {"kedaOperator": {"namespace": "keda", "podLabels": v}},
        kinds=("NetworkPolicy",),
    ),
    FieldClass(
        "monitoring.selectorLabels",
        st.dictionaries(qualified_names, label_values, min_size=1, max_size=2),
        _monitoring(lambda v: {"selectorLabels": v}),
        kinds=("ServiceMonitor", "PrometheusRule"),
    ),
    FieldClass(
        "monitoring.dashboardLabel",
        qualified_names,
        _monitoring(lambda v: {"dashboardLabel": v}),
        kinds=("ConfigMap",),
    ),
]


# --------------------------------------------------------------------------- both sides


def _raw(overrides: dict[str, Any]) -> dict[str, Any]:
    config, _ = stack_config(STACK, ROOT)
    raw: dict[str, Any] = {key.split(":", 1)[1]: value for key, value in config.items()}
    return {**raw, **overrides}


def our_verdict(overrides: dict[str, Any]) -> list[str]:
    """The problems ``pulumi preview`` would report for the prod stack with ``overrides``."""
    try:
        parse_stack_config(_raw(overrides))
    except ValidationError as err:
        return [str(p) for p in err.problems]
    return []


def _find(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return copy.deepcopy(doc)


def rendered(base: Docs, overrides: dict[str, Any], kinds: tuple[str, ...]) -> Docs:
    """The objects that carry the value, built from the prod render by the program's own builders.

    The stack config is parsed for its types only (no validation): this is the object the program would
    hand to Kubernetes if it did not refuse the value.
    """
    args = read_stack_config(_raw(overrides))
    docs = []
    for kind in kinds:
        if kind == "Deployment":
            deployment = _find(base, "Deployment", "celery-main")
            template = deployment["spec"]["template"]
            selector = deployment["spec"]["selector"]["matchLabels"]
            template["spec"] = apply_to_pod(
                {**template["spec"], "containers": [dict(c) for c in template["spec"]["containers"]]},
                args.pod,
                selector=selector,
                service_account_default="celery-main",
            )
            own = {k: v for k, v in template["metadata"]["labels"].items() if k in OWN_LABELS}
            template["metadata"] = pod_metadata(own, args.pod.labels, args.pod.annotations)
            docs.append(deployment)
        elif kind == "NetworkPolicy":
            ingress = [{"from": [args.keda_operator.ingress_peer()]}]
            docs.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": "keda-to-redis"},
                    "spec": {"podSelector": {}, "ingress": ingress},
                }
            )
        elif kind in ("ServiceMonitor", "PrometheusRule"):
            doc = _find(base, kind)
            doc["metadata"]["labels"] = {**doc["metadata"]["labels"], **args.monitoring.selector_labels}
            docs.append(doc)
        else:
            doc = _find(base, "ConfigMap", "celery-exporter-dashboard")
            labels = {k: v for k, v in doc["metadata"]["labels"].items() if v != "1"}
            doc["metadata"]["labels"] = {**labels, args.monitoring.dashboard_label: "1"}
            docs.append(doc)
    for doc in docs:
        doc["metadata"] = {**doc["metadata"], "namespace": NAMESPACE}
        for key in ("resourceVersion", "uid", "creationTimestamp"):
            doc["metadata"].pop(key, None)
    return docs


def server_verdict(api_client: client.ApiClient, docs: Docs) -> list[str]:
    """The API server's refusals of a dry-run create of each object (none: it would have stored them all)."""
    refusals = []
    for doc in docs:
        try:
            dry_run_create(api_client, doc)
        except ApiException as exc:
            if exc.status not in (400, 422):
                raise
            refusals.append(f"{doc['kind']}: {exc.status} {exc.body}")
    return refusals


# --------------------------------------------------------------------------- the tests


@dataclass
class Tally:
    """How many cases a class ran, how many each side refused, and how long it took."""

    cases: int = 0
    refused: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)


TALLY: dict[str, Tally] = {c.name: Tally() for c in CLASSES}


@pytest.fixture(scope="module")
def base(kube_api: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docs]:
    out = tmp_path_factory.mktemp("podfields") / f"{STACK}.yaml"
    docs = finish_render(render_stack(STACK, out), out)
    client.CoreV1Api(kube_api.api_client).create_namespace({"metadata": {"name": NAMESPACE}})
    yield docs


def test_the_prod_stack_without_pod_settings_is_accepted_by_both(kube_api: KubeAPI, base: Docs) -> None:
    # The baseline every case changes one value of: a refusal in a case is the value's.
    assert our_verdict({"pod": {}}) == []
    for kinds in {fc.kinds for fc in CLASSES}:
        assert server_verdict(kube_api.api_client, rendered(base, {"pod": {}}, kinds)) == [], kinds


@pytest.mark.parametrize("fc", CLASSES, ids=[c.name for c in CLASSES])
def test_the_program_and_the_api_server_give_the_same_verdict(fc: FieldClass, kube_api: KubeAPI, base: Docs) -> None:
    tally = TALLY[fc.name]
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(value=fc.values.filter(fc.keep))
    def agree(value: Any) -> None:
        overrides = fc.config(value)
        ours = our_verdict(overrides)
        server = server_verdict(kube_api.api_client, rendered(base, overrides, fc.kinds))
        tally.cases += 1
        tally.refused += bool(server)
        assert bool(ours) == bool(server), (
            f"{fc.name} = {value!r}\n ours:   {ours or 'accept'}\n server: {server or 'accept'}"
        )

    agree()
    tally.seconds += time.monotonic() - started


def test_the_agreement_counts(record_property: Callable[[str, str], None]) -> None:
    lines = [f"{'class':<28} cases  refused  seconds"]
    lines += [f"{name:<28} {t.cases:>5}  {t.refused:>7}  {t.seconds:>7.1f}" for name, t in TALLY.items()]
    record_property("cluster_table", "\n".join(lines))
    # Each class ran, and its values fell on both sides of its rule.
    assert all(t.cases and 0 < t.refused < t.cases for t in TALLY.values()), "\n".join(lines)
