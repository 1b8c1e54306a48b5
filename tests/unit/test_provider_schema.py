"""The schema that the provider serves (``pulumi package get-schema``) against CeleryPlatformArgs, its one source.

The schema is asked of the provider's own GetSchema, in-process, and checked against the dataclasses
walked here independently of the generator: a field added, renamed, re-documented or given a default
in a dataclass and not in the served schema (or the reverse) fails a test below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pulumi.provider.server import ProviderServicer
from pulumi.runtime.proto import provider_pb2
from pydantic.alias_generators import to_camel

from celery_platform import __version__
from celery_platform.config.keys import KEYS
from celery_platform.config.platform import CeleryPlatformArgs
from celery_platform.config.schema import MISSING, field_default, field_docs, field_type, is_secret, is_setting
from celery_platform.package.provider import CeleryPlatformProvider

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "celery-platform"
TOKEN = "celery-platform:index:CeleryPlatform"
OUTPUTS = {"namespace", "secretName", "brokerHost", "brokerPort", "brokerUrl", "workerDeployments", "taskRoutes"}
# Pulumi's own meta-schema of package schemas (pkg/codegen/schema/pulumi.json of pulumi v3.274.1).
META_SCHEMA = Path(__file__).parent / "fixtures" / "pulumi-package-schema-v3.274.1.json"


@functools.cache
def served() -> dict[str, Any]:
    """The schema the provider answers GetSchema with, as the engine asks for it."""
    servicer = ProviderServicer(CeleryPlatformProvider(), [], "127.0.0.1:9")
    # A loop of its own, never the current one: asyncio.run would leave the thread without one for Pulumi.
    loop = asyncio.new_event_loop()
    try:
        response = loop.run_until_complete(servicer.GetSchema(provider_pb2.GetSchemaRequest(version=0), None))
    finally:
        loop.close()
    result: dict[str, Any] = json.loads(response.schema)
    return result


def object_of(cls: type) -> dict[str, Any]:
    """The served description of a dataclass: the resource's inputs for CeleryPlatformArgs, else its type."""
    if cls is CeleryPlatformArgs:
        resource = served()["resources"][TOKEN]
        return {"properties": resource["inputProperties"], "required": resource["requiredInputs"]}
    spec: dict[str, Any] = served()["types"][f"{PACKAGE}:index:{cls.__name__}"]
    return spec


def dataclasses_in(tp: Any) -> list[type]:
    """Every dataclass a field type names: itself, its items, its optional value."""
    found = []
    for arg in [tp, *typing.get_args(tp)]:
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            found.append(arg)
        elif arg is not tp:
            found += dataclasses_in(arg)
    return found


def every_dataclass() -> list[type]:
    """CeleryPlatformArgs and every dataclass reachable from its settings, in the order they are met."""
    seen: list[type] = []
    todo: list[type] = [CeleryPlatformArgs]
    while todo:
        cls = todo.pop(0)
        if cls not in seen:
            seen.append(cls)
            todo += [d for f in dataclasses.fields(cls) if is_setting(f) for d in dataclasses_in(field_type(cls, f))]  # type: ignore[arg-type]
    return seen


CLASSES = every_dataclass()
FIELDS = [
    (cls, f)
    for cls in CLASSES
    for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    if is_setting(f)
]


def every_property() -> list[tuple[str, str, dict[str, Any]]]:
    """Every (owner, name, spec) of the served schema: the resource's inputs and outputs, each type's properties."""
    resource = served()["resources"][TOKEN]
    found = [("CeleryPlatform input", k, v) for k, v in resource["inputProperties"].items()]
    found += [("CeleryPlatform output", k, v) for k, v in resource["properties"].items()]
    for token, spec in served()["types"].items():
        found += [(token, k, v) for k, v in spec["properties"].items()]
    return found


PROPERTIES = every_property()


@pytest.mark.parametrize(("cls", "f"), FIELDS, ids=[f"{cls.__name__}.{f.name}" for cls, f in FIELDS])
def test_every_field_is_served_with_its_description_and_required_ness(cls: type, f: dataclasses.Field[Any]) -> None:
    spec = object_of(cls)
    name = to_camel(f.name)
    assert name in spec["properties"], f"{cls.__name__}.{f.name} is missing from the served schema as {name}"
    prop = spec["properties"][name]
    assert prop["description"] == field_docs(cls)[f.name]
    assert (name in spec.get("required", [])) == (field_default(f) is MISSING)
    assert prop.get("secret", False) == is_secret(f)


@pytest.mark.parametrize(("cls", "f"), FIELDS, ids=[f"{cls.__name__}.{f.name}" for cls, f in FIELDS])
def test_every_served_default_is_the_dataclass_default(cls: type, f: dataclasses.Field[Any]) -> None:
    prop = object_of(cls)["properties"][to_camel(f.name)]
    default = field_default(f)
    if "default" not in prop:
        # Only a value the schema cannot hold goes without: none, an object, a list or a map.
        assert default is None or not isinstance(default, str | int | Decimal | float)
        return
    # JSON has no decimals: a Decimal default is served as the number it spells.
    assert (Decimal(str(prop["default"])) if isinstance(default, Decimal) else prop["default"]) == default
    assert isinstance(prop["default"], bool) == isinstance(default, bool)
    assert isinstance(prop["default"], str) == isinstance(default, str)


def test_no_property_is_served_that_no_field_declares() -> None:
    for cls in CLASSES:
        declared = {to_camel(f.name) for f in dataclasses.fields(cls) if is_setting(f)}  # type: ignore[arg-type]
        assert set(object_of(cls)["properties"]) == declared, cls.__name__


def test_every_type_is_one_dataclass_and_every_dataclass_one_type() -> None:
    assert set(served()["types"]) == {f"{PACKAGE}:index:{cls.__name__}" for cls in CLASSES[1:]}
    for token, spec in served()["types"].items():
        assert spec["type"] == "object" and spec["description"] and "\n" not in spec["description"], token


def test_the_package_hosts_celery_platform_as_a_component_under_its_type_token() -> None:
    assert list(served()["resources"]) == [TOKEN]
    assert served()["resources"][TOKEN]["isComponent"] is True
    assert served()["name"] == PACKAGE and served()["version"] == __version__


def test_the_component_has_a_one_line_description() -> None:
    description = served()["resources"][TOKEN]["description"]
    assert description and "\n" not in description


def test_the_inputs_are_the_stack_config_keys() -> None:
    assert list(served()["resources"][TOKEN]["inputProperties"]) == [k.name for k in KEYS]


def test_the_required_inputs_are_those_without_a_sensible_default() -> None:
    resource = served()["resources"][TOKEN]
    assert set(resource["requiredInputs"]) == {"image", "pools", "databaseUrl"}
    assert resource["inputProperties"]["pools"]["items"]["$ref"] == f"#/types/{PACKAGE}:index:PoolSpec"


@pytest.mark.parametrize(("owner", "name", "prop"), PROPERTIES, ids=[f"{o}.{n}" for o, n, _ in PROPERTIES])
def test_every_property_is_typed_and_described_on_one_line(owner: str, name: str, prop: dict[str, Any]) -> None:
    assert "type" in prop or "$ref" in prop, f"{owner}.{name} has no type"
    for inner in ("items", "additionalProperties"):
        if inner in prop:
            assert "type" in prop[inner] or "$ref" in prop[inner], f"{owner}.{name} {inner} have no type"
    assert prop["description"].strip(), f"{owner}.{name} has no description"
    # An indented continuation line would render as a code block in every SDK.
    assert "\n" not in prop["description"], f"{owner}.{name}: description spans lines"


@pytest.mark.parametrize(("owner", "name", "prop"), PROPERTIES, ids=[f"{o}.{n}" for o, n, _ in PROPERTIES])
def test_every_optional_input_gives_its_default_and_no_required_one_does(
    owner: str, name: str, prop: dict[str, Any]
) -> None:
    if owner.endswith("output"):
        return
    required = (
        served()["resources"][TOKEN]["requiredInputs"]
        if owner.startswith("CeleryPlatform")
        else served()["types"][owner].get("required", [])
    )
    if name in required:
        assert "Default:" not in prop["description"], f"{owner}.{name} is required but documents a default"
    else:
        assert re.search(r"Default: \S.*$", prop["description"]), f"{owner}.{name} does not give its default"


def test_no_property_refers_to_anything_but_the_package_types_or_any() -> None:
    refs: set[str] = set()
    for _, _, prop in PROPERTIES:
        for spec in (prop, prop.get("items", {}), prop.get("additionalProperties", {})):
            if "$ref" in spec:
                refs.add(spec["$ref"])
    assert refs and all(r.startswith(f"#/types/{PACKAGE}:index:") or r == "pulumi.json#/Any" for r in refs), refs
    assert {r.removeprefix("#/types/") for r in refs if r.startswith("#/")} == set(served()["types"])


def test_numbers_lists_and_maps_have_their_schema_types() -> None:
    types = served()["types"]
    assert types[f"{PACKAGE}:index:Ratio"]["properties"]["cpu"]["type"] == "number"
    assert types[f"{PACKAGE}:index:AlertThresholds"]["properties"]["failureRatio"] == {
        **types[f"{PACKAGE}:index:AlertThresholds"]["properties"]["failureRatio"],
        "type": "number",
        "default": 0.05,
    }
    queues = types[f"{PACKAGE}:index:PoolSpec"]["properties"]["queues"]
    assert queues["type"] == "array" and queues["items"] == {"type": "string"}
    routes = served()["resources"][TOKEN]["inputProperties"]["taskRoutes"]
    assert routes["type"] == "object" and routes["additionalProperties"] == {"type": "string"}
    affinity = types[f"{PACKAGE}:index:PodSettings"]["properties"]["affinity"]
    assert affinity["additionalProperties"] == {"$ref": "pulumi.json#/Any"}


def test_the_secret_inputs_are_secret_strings_that_accept_outputs() -> None:
    inputs = served()["resources"][TOKEN]["inputProperties"]
    secrets = {name for name, prop in inputs.items() if prop.get("secret")}
    assert secrets == {k.name for k in KEYS if k.secret}
    assert {"databaseUrl", "sentryDsn", "brokerUrl"} <= secrets
    for name in secrets:
        assert inputs[name]["type"] == "string" and "plain" not in inputs[name] and "default" not in inputs[name]


def test_no_input_is_plain_so_that_every_sdk_takes_its_values() -> None:
    assert not [name for _, name, prop in PROPERTIES if prop.get("plain")]


def test_the_outputs_are_those_of_the_platform_stack() -> None:
    resource = served()["resources"][TOKEN]
    assert set(resource["properties"]) == OUTPUTS
    assert set(resource["required"]) == OUTPUTS
    assert resource["properties"]["brokerPort"]["type"] == "integer"
    assert resource["properties"]["workerDeployments"]["additionalProperties"]["type"] == "string"
    assert [name for name, prop in resource["properties"].items() if prop.get("secret")] == ["brokerUrl"]


def test_the_schema_is_valid_by_pulumis_own_meta_schema() -> None:
    # Go's RE2 spells named groups (?<name>); Python's re needs (?P<name>).
    meta = json.loads(META_SCHEMA.read_text().replace("(?<", "(?P<"))
    validator = jsonschema.validators.validator_for(meta)(meta)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(served())]
    assert errors == []


def test_fails_when_a_property_breaks_the_meta_schema() -> None:
    # The check above can fail: a default that is an object is refused, as the CLI would refuse it.
    meta = json.loads(META_SCHEMA.read_text().replace("(?<", "(?P<"))
    broken = json.loads(json.dumps(served()))
    broken["resources"][TOKEN]["inputProperties"]["namespace"]["default"] = {"not": "a primitive"}
    assert list(jsonschema.validators.validator_for(meta)(meta).iter_errors(broken))


def test_pulumi_plugin_yaml_runs_the_provider_directory_with_python_in_its_own_venv() -> None:
    manifest = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    # A venv of its own, which `pulumi package add` creates: never the project's ./venv, which it would rebuild.
    assert manifest["runtime"]["options"]["virtualenv"] == "venv"
    assert (ROOT / "provider" / manifest.get("main", ".") / "__main__.py").is_file()
    # The CLI refuses a folder that holds both a PulumiPlugin.yaml and a Pulumi.yaml.
    assert not (ROOT / "PulumiPlugin.yaml").exists()


def test_the_plugins_venv_is_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "venv/" in ignored or "provider/venv/" in ignored


def test_the_provider_host_is_thin() -> None:
    host = [p for p in (ROOT / "provider").glob("*.py")]
    assert sorted(p.name for p in host) == ["__init__.py", "__main__.py"]
    assert sum(len(p.read_text().splitlines()) for p in host) < 40
