"""Cluster tier: a real kube-apiserver + kube-controller-manager + etcd on 127.0.0.1.

The control plane is our own Go module ``tools/kube-testenv`` (built from the upstream
k8s.io/kubernetes modules by ``tools/kube-testenv/build.sh``), started by
``tests/kube_testenv.py``. A build failure FAILS the tests: there is no fallback and no skip.

Fixtures:
  kube_api  (session)  started control plane with the Prometheus Operator CRDs installed:
                       ``.kubeconfig``, ``.api_client``, ``.apply(docs)`` (= apply_manifests),
                       ``.wait_for_default_service_account(ns)``

Report: a test that calls ``record_property("cluster_table", text)`` gets ``text`` printed in
the terminal summary (no ``-s`` needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.kube_testenv import KubeAPI, running_kube_testenv
from tests.operator_crds import install_operator_crds


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    with running_kube_testenv(tmp_path_factory.mktemp("kube-testenv")) as env:
        install_operator_crds(env)
        yield env


# --------------------------------------------------------------------------- report

CLUSTER_TABLE = "cluster_table"
"""``record_property(CLUSTER_TABLE, text)`` in a test: the text is printed in the terminal summary."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print every table the cluster tests recorded, so it shows without ``-s``."""
    for reports in terminalreporter.stats.values():
        for rep in reports:
            for name, value in getattr(rep, "user_properties", ()):
                if name == CLUSTER_TABLE and getattr(rep, "when", "call") == "call":
                    terminalreporter.write_sep("-", f"cluster tier: {rep.nodeid}")
                    terminalreporter.write_line(str(value))
