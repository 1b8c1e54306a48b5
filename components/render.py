"""Render a stack offline: run the real program under the mock engine and print its Kubernetes objects.

``python -m celery_platform.render <stack> [-o FILE] [--project-dir DIR] [--diff OTHER.yaml]`` reads ``Pulumi.yaml`` and
``Pulumi.<stack>.yaml`` of any Pulumi project that uses these components (the current directory by
default), runs its ``main:`` program in-process under ``pulumi.runtime.set_mocks`` and prints every Kubernetes
object as multi-document YAML, in apply order. It behaves like pulumi-kubernetes where correctness
depends on it (auto-names with a suffix, the default namespace). Generated, encrypted or absent
secret values are placeholders; the output is the same bytes for the same input.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import gc
import hashlib
import json
import os
import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from celery_platform.render_output import diff_documents, dump_documents

SECRET_SIG = "4dabf18193072939515e22adb298388d"
PLACEHOLDER = "<secret>"
# Install order, as Helm applies kinds: guardrails before the pods they admit, config before its users.
KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "Pod",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
]
CLUSTER_SCOPED = {"Namespace"}
# Valid-looking stand-ins for secret config that is encrypted or absent: they pass validation, and
# like every secret value they print only as PLACEHOLDER.
RENDER_SECRET_STANDINS = {
    "databaseUrl": "postgresql://render:render@database.invalid:5432/render",
    "sentryDsn": "https://0123456789abcdef0123456789abcdef@sentry.invalid/1",
    "djangoSecretKey": "render-stand-in-" + "abcdefghij" * 5,
    "fieldEncryptionKey": base64.urlsafe_b64encode(bytes(32)).decode(),
    "redisPassword": "renderstandinpassword0",
}


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def _fake_random(name: str, length: int, alphabet: str) -> str:
    """A deterministic stand-in for a random value of ``length`` characters from ``alphabet``."""
    digest = b""
    counter = 0
    while len(digest) < length:
        digest += hashlib.sha512(f"{name}/{counter}".encode()).digest()
        counter += 1
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270"


def scrub(value: Any) -> Any:
    """Replace every secret in ``value`` by PLACEHOLDER (keys of a secret mapping stay visible)."""
    if _is_secret(value):
        inner = value.get("value")
        if isinstance(inner, dict):
            return {k: PLACEHOLDER for k in sorted(inner)}
        return PLACEHOLDER
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class RenderMocks(pulumi.runtime.Mocks):
    """The mock engine of the render: records Kubernetes inputs and answers as the providers would."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    resources: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    """Every stand-in random value handed out, so tests can prove none of them reaches the output."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = copy.deepcopy(dict(args.inputs))
        self.resources.append((args.typ, args.name, copy.deepcopy(inputs)))
        outputs = inputs
        if args.typ == "random:index/randomPassword:RandomPassword":
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            if inputs.get("special", True):
                alphabet += inputs.get("overrideSpecial", "!@#$%&*()-_=+[]{}<>:?")
            outputs = {**inputs, "result": _fake_random(args.name, int(inputs["length"]), alphabet)}
            self.generated.append(outputs["result"])
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = hashlib.shake_256(args.name.encode()).digest(int(inputs["length"]))
            outputs = {**inputs, "base64": base64.b64encode(raw).decode(), "hex": raw.hex()}
            self.generated += [outputs["base64"], outputs["hex"]]
        elif args.typ.startswith("kubernetes:"):
            metadata = dict(inputs.get("metadata") or {})
            # pulumi-kubernetes auto-names with a random suffix; ours is derived from the name.
            metadata.setdefault("name", f"{args.name}-{_suffix(args.name)}")
            if inputs.get("kind") not in CLUSTER_SCOPED:
                metadata.setdefault("namespace", "default")
            outputs = {**inputs, "metadata": metadata}
            self.objects.append(outputs)
        return f"{args.name}_id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def ordered(self) -> list[dict[str, Any]]:
        """Return the Kubernetes objects, scrubbed, in apply order (kind, then namespace and name)."""

        def rank(obj: dict[str, Any]) -> tuple[int, str, str]:
            kind = obj.get("kind", "")
            meta = obj["metadata"]
            order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
            return order, str(meta.get("namespace", "")), str(meta["name"])

        return [_ordered_keys(scrub(obj)) for obj in sorted(self.objects, key=rank)]


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _ordered_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Sort every mapping (the mock gives no fixed order); apiVersion, kind and metadata come first."""
    obj = _sorted(obj)
    head: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    return {**head, **{k: v for k, v in obj.items() if k not in head}}


@dataclass(frozen=True)
class Project:
    """What the render needs of a Pulumi.yaml: the project name, its program folder and its config."""

    root: Path
    name: str
    main: Path
    config: Mapping[str, Any]


def load_project(root: Path | None = None) -> Project:
    """Read ``root``/Pulumi.yaml (``root`` defaults to the current directory, as for the Pulumi CLI)."""
    root = Path.cwd() if root is None else root
    path = root / "Pulumi.yaml"
    if not path.is_file():
        raise SystemExit(f"no Pulumi.yaml in {root.resolve()}: pass --project-dir, the folder of a Pulumi project")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, Mapping) or not isinstance(document.get("name"), str):
        raise SystemExit(f"{path}: not a Pulumi project file (it needs a `name:`)")
    return Project(root, document["name"], root / str(document.get("main") or "."), document.get("config") or {})


def stack_config(stack: str, root: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """Merge Pulumi.yaml defaults and Pulumi.<stack>.yaml into PULUMI_CONFIG form, with the secret keys."""
    project_file = load_project(root)
    root, name = project_file.root, project_file.name
    project = {"config": project_file.config}
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise SystemExit(f"no stack file {stack_file.name}: the stacks here are {available_stacks(root)}")
    stack_values = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, Mapping) and "default" in decl:
            config[f"{name}:{key}"] = _as_config_string(decl["default"])
        if isinstance(decl, Mapping) and decl.get("secret"):
            secret_keys.append(f"{name}:{key}")
    for full_key, value in stack_values.items():
        short = full_key.split(":", 1)[-1]
        if isinstance(value, Mapping) and "secure" in value:
            secret_keys.append(full_key)
            value = RENDER_SECRET_STANDINS.get(short, PLACEHOLDER)
        config[full_key] = _as_config_string(value)
    for short, standin in RENDER_SECRET_STANDINS.items():
        full_key = f"{name}:{short}"
        if full_key in secret_keys and full_key not in config:
            # Absent required secrets are set at `pulumi config set --secret` time; render uses a stand-in.
            config[full_key] = standin
    return config, sorted(set(secret_keys))


def _as_config_string(value: Any) -> str:
    """Pulumi passes every config value as a string, and lists and maps as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def available_stacks(root: Path | None = None) -> list[str]:
    """Return the stacks that have a Pulumi.<stack>.yaml file."""
    root = Path.cwd() if root is None else root
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


@dataclass
class ProgramRun:
    """What one run of the program left behind: the mocks' records and the program's globals."""

    mocks: RenderMocks
    globals: dict[str, Any]


def run_program(stack: str, config: Mapping[str, str], secret_keys: list[str], root: Path | None = None) -> ProgramRun:
    """Run the project's ``main:`` program under the render mocks with ``config``."""
    project = load_project(root)
    os.environ["PULUMI_CONFIG"] = json.dumps(dict(config))
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secret_keys)
    pulumi.runtime.config.set_all_config({}, secret_keys)
    mocks = RenderMocks()
    pulumi.runtime.set_mocks(mocks, project=project.name, stack=stack, preview=False)
    # A folder, as Pulumi runs `main:`: runpy puts it first on sys.path, so the program's siblings import.
    program = str(project.main)
    namespace: dict[str, Any] = {}
    _sync_await(run_pulumi_func(lambda: namespace.update(runpy.run_path(program, run_name="__main__"))))
    return ProgramRun(mocks, namespace)


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one run of the program (reference counting goes on).

    Every resource the program registers stays alive until the run ends, and each full collection
    walks all of them, so with the collector on a render of 4x the pools cost 7x the collection time
    (cProfile charges it to whichever SDK call allocated). The cycles left behind are collected once,
    when the run is over: one pass, linear in what the run built.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def render_documents(stack: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Return the stack's Kubernetes objects, scrubbed and in apply order."""
    config, secret_keys = stack_config(stack, root)
    with cyclic_gc_paused():
        return run_program(stack, config, secret_keys, root).mocks.ordered()


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """Dump ``documents`` as deterministic multi-document YAML, block literals for multi-line strings."""
    return dump_documents(documents)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits 2 with the validation message on invalid config."""
    parser = argparse.ArgumentParser(prog="python -m celery_platform.render", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name: renders Pulumi.<stack>.yaml")
    parser.add_argument("-o", "--output", type=Path, help="write the YAML here instead of stdout")
    parser.add_argument(
        "--project-dir", type=Path, default=None, help="folder of Pulumi.yaml (default: the current one)"
    )
    parser.add_argument(
        "--diff",
        type=Path,
        metavar="OTHER.yaml",
        help="print what changed per object from OTHER.yaml (an earlier render) to this one; exit 1 if anything did",
    )
    options = parser.parse_args(argv)
    try:
        text = to_yaml(render_documents(options.stack, options.project_dir))
    except pulumi.RunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if options.output:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(text)
    if options.diff:
        changes = diff_documents(options.diff.read_text(), text, str(options.diff), f"{options.stack} now")
        sys.stdout.write(changes)
        return 1 if changes else 0
    if not options.output:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    code = main()
    # Collect the mock engine's event loops while asyncio can still close them cleanly; left to
    # interpreter shutdown, their __del__ prints a spurious "Invalid file descriptor" traceback.
    gc.collect()
    sys.exit(code)
