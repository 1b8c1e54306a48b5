"""The render the tiny kubelet reads: ``celery_platform.render`` run on a stack, and lookups into its YAML."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from celery_platform.config._yaml import load_yaml
from celery_platform.config.migrate import structured_keys

REPO = Path(__file__).resolve().parents[3]
_render_cache: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}


def render(stack: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Return the stack's rendered documents, with config ``overrides`` (short key → value) applied.

    The stack files are copied to a temporary project dir, the overrides written into its
    ``Pulumi.<stack>.yaml`` and ``infra`` symlinked; ``python -m celery_platform.render`` runs in a subprocess
    so that the mock engine's global state never leaks into the test process. Cached per input.
    """
    items = tuple(sorted((k, yaml.safe_dump(v)) for k, v in (overrides or {}).items()))
    key = (stack, items)
    if key not in _render_cache:
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            project = Path(tmp)
            shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
            stack_doc = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text()) or {}
            config = stack_doc.setdefault("config", {})
            structured = structured_keys(yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"])
            for short, value in (overrides or {}).items():
                if short in structured:  # a YAML object in the stack file; tests may give it as YAML text
                    config[f"celery-platform:{short}"] = load_yaml(value) if isinstance(value, str) else value
                else:
                    config[f"celery-platform:{short}"] = value if isinstance(value, str) else str(value)
            (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_doc))
            (project / "infra").symlink_to(REPO / "infra")
            out = project / "rendered.yaml"
            argv = [
                sys.executable,
                "-m",
                "celery_platform.render",
                stack,
                "-o",
                str(out),
                "--project-dir",
                str(project),
            ]
            done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"render of {stack} with {overrides} failed:\n{done.stderr}")
            _render_cache[key] = [d for d in yaml.safe_load_all(out.read_text()) if d]
    return _render_cache[key]


def render_stack_file(stack: str, document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the documents rendered in-process from a whole ``Pulumi.<stack>.yaml`` ``document``.

    For a test that changes what ``render``'s overrides cannot (e.g. removes a key). Not cached.
    """
    from celery_platform.render import render_documents

    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        project = Path(tmp)
        shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
        (project / "infra").symlink_to(REPO / "infra")
        (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(dict(document)))
        return render_documents(stack, project)


@dataclass(frozen=True)
class Manifests:
    """Lookups into one rendered stack."""

    documents: list[dict[str, Any]]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.documents:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"no {kind} {name} in the render")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def workload(self, name: str) -> dict[str, Any]:
        for doc in self.documents:
            if doc["kind"] in {"Deployment", "StatefulSet"} and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"no Deployment or StatefulSet {name} in the render")

    def secret_keys(self) -> dict[str, set[str]]:
        return {
            d["metadata"]["name"]: set((d.get("stringData") or {}) | (d.get("data") or {}))
            for d in self.of_kind("Secret")
        }

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: dict(d.get("data") or {}) for d in self.of_kind("ConfigMap")}

    def services(self) -> list[tuple[str, str, list[int]]]:
        """(name, namespace, ports) of every Service."""
        return [
            (d["metadata"]["name"], d["metadata"]["namespace"], [int(p["port"]) for p in d["spec"].get("ports", [])])
            for d in self.of_kind("Service")
        ]


def broker_fqdn(manifests: Manifests, service: str = "redis") -> tuple[str, int]:
    """The broker Service's cluster address as the init container names it (REDIS_HOST, REDIS_PORT)."""
    for doc in manifests.documents:
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for init in doc["spec"]["template"]["spec"].get("initContainers") or []:
            env = {e["name"]: e.get("value") for e in init.get("env") or []}
            if env.get("REDIS_HOST", "").startswith(f"{service}."):
                return str(env["REDIS_HOST"]), int(env["REDIS_PORT"])
    raise KeyError(f"no init container names the {service} Service")
