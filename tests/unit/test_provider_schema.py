"""The schema that the Pulumi SDK's analyzer infers for the provider's components, as other languages see it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.provider.experimental.analyzer import Analyzer, ComponentDefinition, PropertyDefinition
from pulumi.provider.experimental.component import ComponentProvider

from celery_platform import __version__
from provider.component import COMPONENTS, PACKAGE

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "celery-platform:index:CeleryPlatform"
REQUIRED_INPUTS = {"namespace", "image", "celeryApp", "pools", "databaseUrl"}
OUTPUTS = {"namespace", "secretName", "brokerHost", "brokerPort", "brokerUrl", "workerDeployments"}


def analyzed() -> dict[str, Any]:
    """Run the SDK's analyzer in-process, as `pulumi package add` has the plugin do."""
    return dict(Analyzer(PACKAGE).analyze(COMPONENTS))


def schema() -> dict[str, Any]:
    """The JSON schema the plugin serves (analyzer plus the SDK's schema generation)."""
    text = ComponentProvider(COMPONENTS, PACKAGE, version=__version__).schema
    assert text is not None
    result: dict[str, Any] = json.loads(text)
    return result


def every_property() -> list[tuple[str, str, PropertyDefinition]]:
    """Every (owner, property, definition) of every component and type, inputs and outputs."""
    result = analyzed()
    found = []
    for component in result["component_definitions"].values():
        assert isinstance(component, ComponentDefinition)
        found += [(f"{component.name} input", k, v) for k, v in component.inputs.items()]
        found += [(f"{component.name} output", k, v) for k, v in component.outputs.items()]
    for type_def in result["type_definitions"].values():
        found += [(type_def.name, k, v) for k, v in type_def.properties.items()]
    return found


PROPERTIES = every_property()


def test_the_package_hosts_celery_platform_under_its_type_token() -> None:
    resources = schema()["resources"]
    assert list(resources) == [TOKEN]
    assert resources[TOKEN]["isComponent"] is True
    assert schema()["name"] == PACKAGE and schema()["version"] == __version__


def test_the_component_has_a_one_line_description() -> None:
    description = schema()["resources"][TOKEN]["description"]
    assert description and "\n" not in description


@pytest.mark.parametrize(("owner", "name", "prop"), PROPERTIES, ids=[f"{o}.{n}" for o, n, _ in PROPERTIES])
def test_every_property_is_typed_and_described(owner: str, name: str, prop: PropertyDefinition) -> None:
    assert prop.type is not None or prop.ref is not None, f"{owner}.{name} has no type"
    if prop.items is not None:
        assert prop.items.type is not None or prop.items.ref is not None, f"{owner}.{name} items have no type"
    assert prop.description and prop.description.strip(), f"{owner}.{name} has no description"
    # The analyzer copies docstrings verbatim: an indented continuation line would render as code.
    assert "\n" not in prop.description, f"{owner}.{name}: description spans lines"


@pytest.mark.parametrize(("owner", "name", "prop"), PROPERTIES, ids=[f"{o}.{n}" for o, n, _ in PROPERTIES])
def test_every_optional_input_gives_its_default_and_no_required_one_does(
    owner: str, name: str, prop: PropertyDefinition
) -> None:
    if owner.endswith("output"):
        return
    assert prop.description is not None
    if prop.optional:
        assert re.search(r"Default: \S.*$", prop.description), f"{owner}.{name} does not give its default"
    else:
        assert "Default:" not in prop.description, f"{owner}.{name} is required but documents a default"


def test_no_property_refers_to_anything_but_the_package_types_or_any() -> None:
    # No unions, no resource references and no untyped objects: every $ref is one of our own types.
    refs = {p.ref for _, _, p in PROPERTIES if p.ref} | {
        p.items.ref for _, _, p in PROPERTIES if p.items and p.items.ref
    }
    assert refs and all(ref.startswith(f"#/types/{PACKAGE}:index:") for ref in refs), refs


def test_every_named_type_is_an_object_with_a_description() -> None:
    types = schema()["types"]
    assert set(types) == {
        f"{PACKAGE}:index:{name}"
        for name in (
            "WorkerPool",
            "ContainerResources",
            "ResourceQuantities",
            "BeatSettings",
            "RedisSettings",
            "LimitRangeSettings",
            "LimitRatios",
            "QuotaSettings",
            "PodOptions",
            "ServiceAccountSettings",
            "TolerationSettings",
            "SpreadSettings",
            "EnvVarSettings",
            "EnvFromSettings",
            "ObjectKey",
            "VolumeSettings",
            "VolumeMountSettings",
            "EgressRuleSettings",
            "ExternalBrokerSettings",
            "PoolAutoscaling",
            "KedaOperatorSettings",
        )
    }
    for token, spec in types.items():
        assert spec["type"] == "object" and spec["description"], token


def test_the_required_inputs_are_those_without_a_sensible_default() -> None:
    resource = schema()["resources"][TOKEN]
    assert set(resource["requiredInputs"]) == REQUIRED_INPUTS
    assert resource["inputProperties"]["pools"]["items"]["$ref"] == f"#/types/{PACKAGE}:index:WorkerPool"


def test_the_database_url_and_sentry_dsn_accept_outputs_so_that_secrets_stay_secret() -> None:
    inputs = schema()["resources"][TOKEN]["inputProperties"]
    for name in ("databaseUrl", "sentryDsn"):
        assert inputs[name]["type"] == "string" and "plain" not in inputs[name], name


def test_the_outputs_are_those_of_the_platform_stack() -> None:
    resource = schema()["resources"][TOKEN]
    assert set(resource["properties"]) == OUTPUTS
    assert set(resource["required"]) == OUTPUTS
    assert resource["properties"]["brokerPort"]["type"] == "integer"
    assert resource["properties"]["workerDeployments"]["additionalProperties"]["type"] == "string"


def test_pulumi_plugin_yaml_runs_the_provider_directory_with_python_in_the_project_venv() -> None:
    manifest = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    # A venv of its own, which `pulumi package add` creates: never the project's ./venv, which it would rebuild.
    assert manifest["runtime"]["options"]["virtualenv"] == "venv"
    assert (ROOT / "provider" / manifest.get("main", ".") / "__main__.py").is_file()
    # The CLI refuses a folder that holds both a PulumiPlugin.yaml and a Pulumi.yaml.
    assert not (ROOT / "PulumiPlugin.yaml").exists()
