"""The Prometheus Operator CRDs (from tools/promtool/crds.sh) and a strict check of objects against them.

Shared by the render tier (tests/manifests, offline) and the cluster tier (tests/cluster, which
installs the CRDs in a real API server with ``install_operator_crds``; a tier that runs ``pulumi up``
against kube-testenv needs them installed the same way). The strict check does what the API server's strict field
validation does with a structural schema: the openAPIV3Schema (types, enums, required, patterns) by
jsonschema, and every field that the schema does not declare is an error, unless the schema keeps
unknown fields (``x-kubernetes-preserve-unknown-fields``) or declares ``additionalProperties``.
A failing fetch FAILS the tests: there is no fallback and no skip.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml
from kubernetes import client

if TYPE_CHECKING:
    from tests.kube_testenv import KubeAPI

REPO_ROOT = Path(__file__).resolve().parents[1]
CRDS_SH = REPO_ROOT / "tools" / "promtool" / "crds.sh"
GROUP = "monitoring.coreos.com"


def crds_dir() -> Path:
    """Run tools/promtool/crds.sh (cached by key) and return the directory of CRD files."""
    done = subprocess.run([str(CRDS_SH)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"tools/promtool/crds.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


class _Loader(yaml.SafeLoader):
    """PyYAML resolves a bare ``=`` (an enum value in these CRDs) to YAML 1.1's "value" tag; it is a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """Return every CustomResourceDefinition document in ``directory``."""
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        loaded = yaml.load_all(path.read_text(), Loader=_Loader)  # a SafeLoader subclass
        docs += [d for d in loaded if d and d.get("kind") == "CustomResourceDefinition"]
    return docs


def schemas(crds: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Return {(apiVersion, kind): openAPIV3Schema} of every served version."""
    out = {}
    for crd in crds:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


def _unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    problems = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                problems += _unknown_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                problems += _unknown_fields(item, extra, f"{path}.{key}")
            elif properties is not None or extra is False:
                problems.append(f'{path}: unknown field "{key}"')
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return problems


def strict_problems(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Return every schema violation and unknown field of ``doc`` (metadata is the API server's own)."""
    body = {k: v for k, v in doc.items() if k != "metadata"}
    body_schema = {**schema, "properties": {k: v for k, v in schema.get("properties", {}).items() if k != "metadata"}}
    validator = jsonschema.Draft7Validator(body_schema)
    problems = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in validator.iter_errors(body)
    ]
    return problems + _unknown_fields(body, body_schema, "")


def install_operator_crds(env: KubeAPI, timeout_s: float = 60.0) -> None:
    """Install the Prometheus Operator's CRDs (tools/promtool/crds.sh), as a cluster with the operator has
    them, and wait until each is Established, so that the stacks' ServiceMonitor and PrometheusRule apply."""
    install_crds(env, load_crds(crds_dir()), timeout_s)


def install_crds(env: KubeAPI, crds: list[dict[str, Any]], timeout_s: float = 60.0) -> None:
    """Apply ``crds`` and wait until each is Established."""
    env.apply(crds)
    api = client.ApiextensionsV1Api(env.api_client)
    deadline = time.monotonic() + timeout_s
    pending = {c["metadata"]["name"] for c in crds}
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            conditions = api.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                pending.discard(name)
        time.sleep(0.5)
    assert not pending, f"CRDs not Established after {timeout_s}s: {sorted(pending)}"
