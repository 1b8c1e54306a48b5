"""The component package under the real engine: a Python and a TypeScript project make the stack's objects.

Two projects of other teams add this repository's provider/ folder with ``pulumi package add``, which
builds the package's own venv, asks the plugin for its schema, and generates and links an SDK: a Python
one into the Python project's venv, and ``sdks/celery-platform`` (compiled by its own postinstall) into
the TypeScript project's node_modules. Each program creates ``CeleryPlatform("celery", ...)`` through the
plugin (the engine's Construct call, the path every language takes) with the settings of the
repository's Pulumi.prod.yaml, read here at test time, plus a secret databaseUrl. Each passes a
``k8s.Provider`` with ``renderYamlToDirectory`` as its kubernetes provider, so ``pulumi up`` writes the
objects as YAML. The stack program itself runs for stack prod with ``kubernetes:renderYamlToDirectory``
in its config. The three object sets must agree in kinds, names and specs; only Secrets' values, what
derives from them and auto-name suffixes may differ (tests/engine/rendered_objects.py).

Then the Python project deploys the same platform to the real cluster: up with the provider's await
logic on, a preview that shows no changes, and a destroy that the protected Fernet key refuses until it
is unprotected. ``pulumi package get-schema`` works from the repository root.

The Node.js language host is built by tools/pulumi-engine/build.sh next to the CLI and the Python host.
npm and pip install from their registries, with their caches under build/, so a second run is faster;
a clean clone installs everything itself.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.engine.rendered_objects import FROM_A_SECRET, differences, load_rendered, normalised
from tests.kube_testenv import KubeAPI

P = "celery-platform:"
TOKEN = "celery-platform:index:CeleryPlatform"
CONSUMERS = Path(__file__).resolve().parent / "package_consumers"
STACK = "prod"
DATABASE_URL = "postgresql://app:pw@db.internal:5432/app"
CACHES = {"npm_config_cache": REPO / "build" / "npm-cache", "PIP_CACHE_DIR": REPO / "build" / "pip-cache"}
T = TypeVar("T")


# --------------------------------------------------------------------------- the settings


def stack_settings() -> dict[str, Any]:
    """The celery-platform keys of Pulumi.prod.yaml, as the stack file holds them now."""
    config = yaml.safe_load((REPO / f"Pulumi.{STACK}.yaml").read_text())["config"]
    settings = {k[len(P) :]: v for k, v in config.items() if k.startswith(P)}
    encrypted = sorted(k for k, v in settings.items() if isinstance(v, dict) and set(v) == {"secure"})
    assert not encrypted, f"Pulumi.{STACK}.yaml holds encrypted values this test cannot pass on: {encrypted}"
    return settings


def _yaml(value: Any) -> Any:
    """A structured key's value: a YAML object now, YAML text in a stack file from before."""
    return yaml.safe_load(value) if isinstance(value, str) else value


def _python_name(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class Inputs:
    """A schema-typed view of settings: the component's input shapes, with their names in one language."""

    schema: dict[str, Any]
    python: bool

    def _spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        ref = spec.get("$ref", "")
        if ref.startswith("#/types/"):
            return dict(self.schema["types"][ref[len("#/types/") :]])
        return spec

    def value(self, spec: dict[str, Any], value: Any, where: str) -> Any:
        """``value`` as the schema types it: a stack file's "600" is an integer input, its YAML text an object."""
        spec = self._spec(spec)
        kind = spec.get("type")
        if isinstance(value, str):
            if kind in ("object", "array"):
                value = yaml.safe_load(value)  # a stack file from before native YAML objects
            elif kind == "integer" and re.fullmatch(r"-?[0-9]+", value.strip()):
                value = int(value)
            elif kind == "number" and re.fullmatch(r"-?[0-9]+(\.[0-9]*)?", value.strip()):
                value = float(value) if "." in value else int(value)
            elif kind == "boolean" and value.lower() in ("true", "false"):
                value = value.lower() == "true"
        if kind == "array" and isinstance(value, list):
            return [self.value(spec.get("items", {}), v, f"{where}[{i}]") for i, v in enumerate(value)]
        if kind == "object" and isinstance(value, dict):
            if "properties" in spec:
                unknown = sorted(set(value) - set(spec["properties"]))
                assert not unknown, (
                    f"{where}: the package's schema has no {unknown} (it has {sorted(spec['properties'])})"
                )
                return {self.name(k): self.value(spec["properties"][k], v, f"{where}.{k}") for k, v in value.items()}
            items = spec.get("additionalProperties", {})
            return {k: self.value(items, v, f"{where}.{k}") for k, v in value.items()}
        return value

    def name(self, name: str) -> str:
        return _python_name(name) if self.python else name

    def args(self, settings: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The CeleryPlatform inputs for ``settings`` and the names of those that are secrets."""
        resource = self.schema["resources"][TOKEN]
        properties = resource["inputProperties"]
        unknown = sorted(set(settings) - set(properties))
        assert not unknown, f"the package's CeleryPlatform has no input for the stack keys {unknown}"
        args = {self.name(k): self.value(properties[k], v, k) for k, v in settings.items()}
        secrets = [self.name(k) for k in settings if properties[k].get("secret")]
        return args, secrets


# --------------------------------------------------------------------------- the three runs


@dataclass
class Rendered:
    """What one ``pulumi up`` wrote, its stack outputs and how long each step took."""

    objects: list[dict[str, Any]]
    outputs: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    project: Project | None = None


def timed(timings: dict[str, float], step: str, run: Callable[[], T]) -> T:
    started = time.monotonic()
    result = run()
    timings[step] = round(time.monotonic() - started, 1)
    return result


def up_rendering(project: Project, directory: Path, timings: dict[str, float]) -> Rendered:
    """``pulumi up`` with no cluster to reach, then the objects it wrote, one per kubernetes resource."""
    no_cluster = project.dir.parent / "no-kubeconfig"
    timed(
        timings,
        "up",
        lambda: project.sh(
            f"KUBECONFIG={no_cluster} pulumi --non-interactive up --yes --skip-preview --stack {STACK}", timeout=900
        ),
    )
    objects = load_rendered(directory)
    state = json.loads(project.pulumi("stack", "export", "--stack", STACK).stdout)
    kinds = [r["type"] for r in state["deployment"]["resources"] if r["type"].startswith("kubernetes:")]
    assert len(objects) == len(kinds) > 0, f"{len(objects)} objects written for {len(kinds)} kubernetes resources"
    outputs = json.loads(project.pulumi("stack", "output", "--json", "--stack", STACK).stdout)
    return Rendered(objects, outputs, timings, project)


def consumer_project(base: Path, toolchain: Toolchain, api: KubeAPI, language: str) -> Project:
    project = make_project(base, toolchain, api)
    shutil.rmtree(project.dir)
    shutil.copytree(CONSUMERS / language, project.dir, ignore=shutil.ignore_patterns("__pycache__"))
    project.env.update({k: str(v) for k, v in CACHES.items()})
    project.env["npm_config_update_notifier"] = "false"
    return project


def write_settings(project: Project, stack: str, inputs: Inputs, settings: dict[str, Any], render: Path | None) -> None:
    args, secrets = inputs.args({**settings, "databaseUrl": DATABASE_URL})
    doc: dict[str, Any] = {"args": args, "secretKeys": secrets}
    if render is not None:
        doc["renderYamlToDirectory"] = str(render)
    (project.dir / f"settings-{stack}.json").write_text(json.dumps(doc, indent=2))


def run_consumer(
    base: Path, toolchain: Toolchain, api: KubeAPI, language: str, schema: dict[str, Any], package_add: threading.Lock
) -> Rendered:
    """A consumer project in ``language``: install, ``pulumi package add``, then up rendering to YAML."""
    timings: dict[str, float] = {}
    project = consumer_project(base, toolchain, api, language)
    if language == "python":
        pins = [
            line
            for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.startswith(("pulumi==", "pulumi_kubernetes=="))
        ]
        (project.dir / "requirements.txt").write_text("\n".join(pins) + "\n")
    timed(timings, "install", lambda: project.pulumi("install", timeout=900))
    # Both projects add the same provider/, whose venv the first add may still be filling.
    with package_add:
        timed(timings, "package add", lambda: project.sh(f"pulumi package add {REPO / 'provider'}", timeout=900))
    sdk = project.dir / "sdks" / "celery-platform"
    assert sdk.is_dir(), f"`pulumi package add` generated no {sdk}"
    if language == "typescript":
        assert (project.dir / "node_modules" / "@pulumi" / "celery-platform" / "bin" / "index.js").is_file(), (
            "the TypeScript SDK was not compiled by its postinstall"
        )
    project.pulumi("stack", "init", STACK)
    directory = project.dir.parent / "rendered"
    write_settings(project, STACK, Inputs(schema, python=language == "python"), stack_settings(), directory)
    return up_rendering(project, directory, timings)


def run_stack_program(base: Path, toolchain: Toolchain, api: KubeAPI) -> Rendered:
    """The repository's own program for stack prod, its kubernetes provider rendering to a directory."""
    timings: dict[str, float] = {}
    project = make_project(base, toolchain, api)
    project.env["DATABASE_URL"] = DATABASE_URL  # on the command line by name, so no log shows the value
    directory = base / "rendered"
    project.pulumi("stack", "init", STACK)
    project.sh(f'pulumi config set --stack {STACK} --secret databaseUrl "$DATABASE_URL"')
    project.pulumi("config", "set", "--stack", STACK, "kubernetes:renderYamlToDirectory", str(directory))
    return up_rendering(project, directory, timings)


@pytest.fixture(scope="module")
def schema(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> dict[str, Any]:
    """``pulumi package get-schema ./provider``, from the repository root."""
    project = make_project(tmp_path_factory.mktemp("schema"), toolchain, cluster, login=False)
    project.dir = REPO
    return dict(json.loads(project.sh("pulumi package get-schema ./provider", timeout=600).stdout))


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, schema: dict[str, Any]
) -> dict[str, concurrent.futures.Future[Rendered]]:
    """The three runs side by side (each mostly waits on npm, pip or the engine); one failing fails its tests."""
    lock = threading.Lock()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = {
            "stack": pool.submit(run_stack_program, tmp_path_factory.mktemp("stack"), toolchain, cluster),
            **{
                language: pool.submit(
                    run_consumer, tmp_path_factory.mktemp(language), toolchain, cluster, language, schema, lock
                )
                for language in ("python", "typescript")
            },
        }
        concurrent.futures.wait(runs.values())
    print(f"\ncomponent package: the three runs took {time.monotonic() - started:.0f}s in all")
    for name, future in runs.items():
        if future.exception() is None:
            print(f"  {name}: {future.result().timings}")
    return runs


# --------------------------------------------------------------------------- the tests


def test_get_schema_works_from_the_repository_root(schema: dict[str, Any]) -> None:
    assert schema["name"] == "celery-platform"
    assert TOKEN in schema["resources"]


def test_the_schema_takes_every_key_of_the_stack_file(schema: dict[str, Any]) -> None:
    args, secrets = Inputs(schema, python=False).args({**stack_settings(), "databaseUrl": DATABASE_URL})
    assert set(args) >= {"namespace", "image", "pools", "databaseUrl"}
    assert "databaseUrl" in secrets


def test_the_stack_program_renders_the_prod_platform(rendered: dict[str, concurrent.futures.Future[Rendered]]) -> None:
    stack = rendered["stack"].result()
    objects = normalised(stack.objects)
    kinds = {key[1] for key in objects}
    assert kinds >= {"Namespace", "LimitRange", "ResourceQuota", "Secret", "Service", "StatefulSet", "Deployment"}
    settings = stack_settings()
    namespace = settings["namespace"]
    [pool] = _yaml(settings["pools"])
    main = objects[("apps/v1", "Deployment", namespace, f"celery-{pool['name']}")]
    assert main["spec"]["replicas"] == pool["replicas"]
    assert main["spec"]["template"]["spec"]["containers"][0]["image"] == settings["image"]
    assert FROM_A_SECRET not in json.dumps(main["spec"]["template"]["spec"]["containers"][0]["args"])


@pytest.mark.parametrize("language", ["python", "typescript"])
def test_a_consumer_makes_the_same_objects_as_the_stack_program(
    language: str, rendered: dict[str, concurrent.futures.Future[Rendered]]
) -> None:
    stack, consumer = rendered["stack"].result(), rendered[language].result()
    diff = differences(normalised(stack.objects), normalised(consumer.objects))
    assert not diff, f"{len(diff)} differences from the stack program's objects:\n" + "\n".join(diff[:60])
    for output in ("namespace", "brokerHost", "brokerPort", "workerDeployments"):
        assert consumer.outputs[output] == stack.outputs[output], output
    assert consumer.outputs["brokerUrl"] == "[secret]"
    assert consumer.outputs["secretName"].rpartition("-")[0] == stack.outputs["secretName"].rpartition("-")[0]


def test_the_comparison_sees_a_changed_replica_count_and_a_renamed_object(
    rendered: dict[str, concurrent.futures.Future[Rendered]],
) -> None:
    objects = rendered["stack"].result().objects
    changed = json.loads(json.dumps(objects))
    deployment = next(o for o in changed if o["kind"] == "Deployment" and "replicas" in o["spec"])
    deployment["spec"]["replicas"] += 1
    diff = differences(normalised(objects), normalised(changed))
    assert len(diff) == 1 and diff[0].endswith(
        f"spec.replicas: expected {deployment['spec']['replicas'] - 1}, got {deployment['spec']['replicas']}"
    ), diff
    renamed = json.loads(json.dumps(objects))
    service = next(o for o in renamed if o["kind"] == "Service")
    name = service["metadata"]["name"]
    service["metadata"]["name"] = f"{name}-x"
    diff = differences(normalised(objects), normalised(renamed))
    assert any(d.startswith("missing ") and d.endswith(f"/{name}") for d in diff), diff
    assert any(d.startswith("extra ") and d.endswith(f"/{name}-x") for d in diff), diff


def test_the_python_consumer_ups_the_platform_on_the_cluster_and_destroys_it(
    rendered: dict[str, concurrent.futures.Future[Rendered]], schema: dict[str, Any]
) -> None:
    consumer = rendered["python"].result().project
    assert consumer is not None
    settings = {**stack_settings(), "namespace": "team-pkg"}  # apart from the walkthrough's celery-prod
    consumer.pulumi("stack", "init", "live")
    consumer.pulumi("config", "set", "--stack", "live", "kubernetes:context", "my-prod-cluster")
    write_settings(consumer, "live", Inputs(schema, python=True), settings, None)
    live = ("--stack", "live")
    timings: dict[str, float] = {}
    try:
        timed(timings, "up", lambda: consumer.pulumi("up", "--yes", *live, timeout=1200))
        timed(timings, "preview", lambda: consumer.pulumi("preview", "--expect-no-changes", *live))
        outputs = json.loads(consumer.pulumi("stack", "output", "--json", *live).stdout)
        assert outputs["brokerHost"].endswith(".team-pkg.svc.cluster.local")
        assert outputs["brokerUrl"] == "[secret]"
        [pool] = _yaml(settings["pools"])
        name = outputs["workerDeployments"][pool["name"]]
        deployment = client.AppsV1Api(consumer.api.api_client).read_namespaced_deployment(name, "team-pkg")
        assert deployment.status.ready_replicas == pool["replicas"]
        # The package protects the generated Fernet key, as the stack does: destroy refuses until
        # its owner unprotects it on purpose.
        refused = consumer.pulumi("destroy", "--yes", *live, check=False, timeout=900)
        assert refused.returncode != 0 and "celery-secrets-field-encryption-key" in refused.stdout + refused.stderr
        consumer.pulumi("state", "unprotect", "--all", "--yes", *live)
        timed(timings, "destroy", lambda: consumer.pulumi("destroy", "--yes", *live, timeout=900))
        namespaces = client.CoreV1Api(consumer.api.api_client).list_namespace().items
        assert "team-pkg" not in {n.metadata.name for n in namespaces}
    finally:
        print(f"\ncomponent package, python on the cluster: {timings}")
        consumer.pulumi("state", "unprotect", "--all", "--yes", *live, check=False)
        consumer.pulumi("destroy", "--yes", *live, check=False, timeout=900)
