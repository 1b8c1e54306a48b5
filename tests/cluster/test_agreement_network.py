"""Our CIDR rule and the real kube-apiserver agree on every generated CIDR, case by case.

Each case is one text near the edges of the grammar: netmask form, IPv6 zones, leading zeros, prefix
lengths past the limit, bits beyond the prefix, IPv4-mapped IPv6, whitespace, line breaks, Unicode
digits. Our verdicts: ``parse_stack_config`` of the prod stack with the case as an ``egress`` CIDR (what
``pulumi preview`` runs), and ``ExternalBrokerSpec.validate`` with it as ``broker.external.cidr``. The
server's verdict: a server-side dry-run create (fieldValidation=Strict) of the prod render's own
``allow-egress`` NetworkPolicy with the case's rule added, built by ``EgressRule.to_k8s()``. A config our
side refuses cannot be rendered, so the rule is built by the same pure function the component calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from apply_rendered import finish_render, render_stack
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.rest import ApiException

from celery_platform.config.broker import ExternalBrokerSpec
from celery_platform.config.egress import EgressRule
from celery_platform.config.env import KeyRef
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config
from celery_platform.render.stack_files import stack_config

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

ROOT = Path(__file__).resolve().parents[2]
STACK = "prod"
CASES = 400
TABLE: list[tuple[str, list[str], list[str], list[str]]] = []  # (case, egress, broker, server), in run order


@pytest.fixture(scope="module")
def egress_policy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The prod render's allow-egress NetworkPolicy, as `make render` writes it."""
    out = tmp_path_factory.mktemp("network") / f"{STACK}.yaml"
    docs = finish_render(render_stack(STACK, out), out)
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("allow-egress")]
    return policy


@pytest.fixture(scope="module")
def namespace(kube_api: KubeAPI) -> Iterator[str]:
    name = f"agree-network-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api.api_client).create_namespace({"metadata": {"name": name}})
    yield name


def _raw_prod() -> dict[str, Any]:
    config, _ = stack_config(STACK, ROOT)
    return {key.split(":", 1)[1]: value for key, value in config.items()}


BASE = _raw_prod()


def _ours_egress(cidr: str) -> list[str]:
    """What `pulumi preview` says of the prod stack with ``cidr`` as one more egress CIDR."""
    egress = json.loads(BASE["egress"]) if isinstance(BASE["egress"], str) else list(BASE["egress"])
    raw = {**BASE, "egress": json.dumps([*egress, {"cidr": cidr, "ports": [5432]}])}
    try:
        parse_stack_config(raw)
    except ValidationError as err:
        return [str(p) for p in err.problems]
    return []


def _ours_broker(cidr: str) -> list[str]:
    spec = ExternalBrokerSpec(
        url_secret=KeyRef(name="broker", key="url"), host="redis.example.com", port=6379, cidr=cidr
    )
    return [str(p) for p in spec.validate("broker.external") if p.field == "broker.external.cidr"]


def _server(kube_api: KubeAPI, namespace: str, policy: dict[str, Any], cidr: str) -> list[str]:
    body = json.loads(json.dumps(policy))
    body["metadata"] = {"name": f"case-{uuid.uuid4().hex[:8]}", "namespace": namespace}
    body["spec"]["egress"].append(EgressRule(cidr=cidr, ports=(5432,)).to_k8s())
    try:
        client.NetworkingV1Api(kube_api.api_client).create_namespaced_network_policy(
            namespace, body, dry_run="All", field_validation="Strict"
        )
    except ApiException as exc:
        if exc.status != 422:
            raise
        return [json.loads(exc.body)["message"]]
    return []


def _octet() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 255).map(str),
        st.integers(0, 99).map(lambda n: f"0{n}"),  # a leading zero
        st.sampled_from(["256", "999", "", "1e1", "0x1", "-1", "+1", "\u0663", "\uff11"]),
    )


def _ipv4() -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(_octet(), min_size=4, max_size=4).map(".".join),
        st.lists(_octet(), min_size=1, max_size=6).map(".".join),
        st.ip_addresses(v=4).map(str),
    )


def _group() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 0xFFFF).map(lambda n: f"{n:x}"),
        st.integers(0, 0xFFFF).map(lambda n: f"{n:04X}"),
        st.sampled_from(["0000", "00000", "fffff", "g", "", "1.2.3.4", "01.2.3.4"]),
    )


def _ipv6() -> st.SearchStrategy[str]:
    def compress(groups: list[str], at: int) -> str:
        at = min(at, len(groups))
        return ":".join(groups[:at]) + "::" + ":".join(groups[at:])

    return st.one_of(
        st.ip_addresses(v=6).map(str),
        st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),  # IPv4-mapped
        st.ip_addresses(v=4).map(lambda a: f"::{a}"),
        st.lists(_group(), min_size=1, max_size=9).map(":".join),
        st.builds(compress, st.lists(_group(), max_size=8), st.integers(0, 8)),
    )


def _address() -> st.SearchStrategy[str]:
    zone = st.sampled_from(["%eth0", "%", "%25", "%1"])
    return st.one_of(_ipv4(), _ipv6(), st.builds(str.__add__, _ipv6(), zone))


def _prefix() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 140).map(str),
        st.integers(0, 40).map(lambda n: f"0{n}"),
        st.sampled_from(["255.0.0.0", "255.255.255.0", "0.0.0.255", "ffff::", "", "+8", "-1", "\uff18", "2 4", "1e1"]),
    )


def _network() -> st.SearchStrategy[str]:
    """A valid network of either family, or the same with host bits set."""
    v4 = st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}")
    v6 = st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}")

    def masked(text: str) -> str:
        import ipaddress

        return str(ipaddress.ip_network(text, strict=False))

    return st.one_of(v4, v6, v4.map(masked), v6.map(masked))


def _decorated(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    around = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n", "\u00a0", "\u2028", "/", "//"])
    return st.builds(lambda a, c, b: a + c + b, around, core, around)


CIDRS = st.one_of(
    _network(),
    st.builds(lambda a, p: f"{a}/{p}", _address(), _prefix()),
    _address(),
    _decorated(_network()),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)


@settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cidr=CIDRS)
@example(cidr="10.0.0.0/255.0.0.0")
@example(cidr="fe80::%eth0/64")
@example(cidr="010.0.0.0/8")
@example(cidr="10.0.0.0/08")
@example(cidr="10.0.0.1/8")
@example(cidr="10.0.0.0/33")
@example(cidr="::/129")
@example(cidr="::ffff:10.0.0.0/104")
@example(cidr="10.0.0.0/8\n")
@example(cidr=" 10.0.0.0/8")
@example(cidr="2001:DB8::/32")
@example(cidr="0.0.0.0/0")
@example(cidr="::1.2.3.4/128")
@example(cidr="1:2:3:4:5:6:7::/128")
def _judge(kube_api: KubeAPI, namespace: str, egress_policy: dict[str, Any], cidr: str) -> None:
    server = _server(kube_api, namespace, egress_policy, cidr)
    ours = _ours_egress(cidr)
    broker = _ours_broker(cidr)
    TABLE.append((cidr, ours, broker, server))
    assert bool(ours) == bool(server), f"egress {cidr!r}: ours {ours}, the API server {server}"
    assert bool(broker) == bool(server), f"broker.external.cidr {cidr!r}: ours {broker}, the API server {server}"
    for problem in ours:
        assert problem.startswith("egress[1].cidr: not a CIDR"), problem


def test_our_cidr_rule_and_the_api_server_agree_on_every_generated_cidr(
    kube_api: KubeAPI, namespace: str, egress_policy: dict[str, Any], record_property: Any
) -> None:
    TABLE.clear()
    try:
        _judge(kube_api, namespace, egress_policy)
    finally:
        differ = [row for row in TABLE if bool(row[1]) != bool(row[3]) or bool(row[2]) != bool(row[3])]
        refused = sum(1 for row in TABLE if row[3])
        lines = [
            f"CIDR cases judged by both sides: {len(TABLE)} ({len(TABLE) - refused} accepted, {refused} refused "
            "by the API server), each as an egress CIDR and as broker.external.cidr",
            f"disagreements: {len(differ)}"
            + (f"; the first, case {TABLE.index(differ[0]) + 1}: {differ[0]!r}" if differ else ""),
        ]
        record_property("cluster_table", "\n".join(lines))
    refused = sum(1 for row in TABLE if row[3])
    assert refused >= 20 and len(TABLE) - refused >= 20, f"too one-sided to prove agreement: {lines}"
