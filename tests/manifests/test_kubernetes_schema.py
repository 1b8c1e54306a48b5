"""Every rendered object is valid Kubernetes 1.37, with unknown fields rejected (kubernetes-validate, strict)."""

from __future__ import annotations

import copy
from importlib import metadata, resources
from typing import Any

import kubernetes_validate
import pytest

from tests.manifests.conftest import ROOT, STACKS, Render
from tests.operator_crds import GROUP, crds_dir, load_crds, schemas, strict_problems

KUBERNETES_VERSION = "1.37"
STRICT_SCHEMA_DIR = f"v{KUBERNETES_VERSION}.0-local-strict"


def _validate(doc: dict[str, Any]) -> str:
    """Validate one document strictly; any error, including a missing schema, propagates."""
    return str(kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True))


def _describe(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def test_the_manifest_tests_found_the_dev_and_prod_stack_files() -> None:
    assert {"dev", "prod"} <= set(STACKS), f"available_stacks() returned {STACKS}"
    assert sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")) == STACKS


def test_the_installed_kubernetes_validate_ships_strict_schemas_for_kubernetes_1_37() -> None:
    assert metadata.version("kubernetes-validate") == "1.37.0"
    schemas = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    shipped = sorted(entry.name for entry in schemas.iterdir())
    assert STRICT_SCHEMA_DIR in shipped, (
        f"kubernetes-validate has no {STRICT_SCHEMA_DIR} schemas (it ships {shipped[-4:]}...); "
        "and validating against an older version would hide what changed since"
    )
    assert schemas.joinpath(STRICT_SCHEMA_DIR, "deployment-apps-v1.json").is_file()


@pytest.fixture(scope="session")
def operator_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    return schemas(load_crds(crds_dir()))


def test_every_document_is_valid_kubernetes_1_37_in_strict_mode(
    rendered: Render, operator_schemas: dict[tuple[str, str], dict[str, Any]]
) -> None:
    failures = []
    for doc in rendered.documents:
        if doc["apiVersion"].startswith(f"{GROUP}/"):
            # Not Kubernetes' own kinds: the Prometheus Operator's CRDs are their schema.
            schema = operator_schemas.get((doc["apiVersion"], doc["kind"]))
            if schema is None:
                failures.append(f"{_describe(doc)}: no CRD serves {doc['apiVersion']} {doc['kind']}")
                continue
            failures += [f"{_describe(doc)}: {p}" for p in strict_problems(doc, schema)]
            continue
        try:
            version = _validate(doc)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            failures.append(f"{_describe(doc)}: {path}: {err.message}")
            continue
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.utils.VersionNotSupportedError) as err:
            failures.append(f"{_describe(doc)}: {err.message}")
            continue
        # validate() silently falls back to the newest schema it has that is not newer than asked.
        if version != KUBERNETES_VERSION:
            failures.append(f"{_describe(doc)}: validated against {version}, not {KUBERNETES_VERSION}")
    assert not failures, f"{rendered.stack}: {len(failures)} invalid documents:\n" + "\n".join(failures)


def test_strict_validation_rejects_a_field_kubernetes_does_not_know(renders: Any) -> None:
    """The oracle is not vacuous: a rendered Deployment with one invented container field fails."""
    deployment = next(d for stack in STACKS for d in renders(stack).of_kind("Deployment"))
    assert _validate(deployment) == KUBERNETES_VERSION
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        _validate(broken)


def test_a_kind_without_a_schema_fails_validation_instead_of_being_skipped() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        _validate({"apiVersion": "example.invalid/v1", "kind": "Imaginary", "metadata": {"name": "x"}})


def test_the_operator_crd_check_fails_on_an_unknown_field_and_a_wrong_type(
    rendered: Render, operator_schemas: dict[tuple[str, str], dict[str, Any]]
) -> None:
    [monitor] = rendered.of_kind("ServiceMonitor")
    bad = copy.deepcopy(monitor)
    bad["spec"]["endpoints"][0]["scrapeEvery"] = "30s"
    bad["spec"]["selector"] = "app"
    problems = strict_problems(bad, operator_schemas[(bad["apiVersion"], bad["kind"])])
    assert any('unknown field "scrapeEvery"' in p for p in problems), problems
    assert any(p.startswith("spec.selector:") for p in problems), problems
