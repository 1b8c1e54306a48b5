"""Translating one rendered container into a local process: env, Services, mounts and the image."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtime.rendered import Manifests

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APP_DIR = REPO / "examples" / "sample_app"
VENV_BIN = Path(sys.executable).parent
IMAGE_PATH = f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"


@dataclass(frozen=True)
class Cluster:
    """What the cluster would provide: Secret values by key, and local addresses of Services."""

    manifests: Manifests
    secret_values: Mapping[str, str]
    """Test value of each Secret key (``CELERY_BROKER_URL``, ``SECRET_KEY``, ...)."""
    service_addresses: Mapping[str, tuple[str, int]]
    """Service name → local (host, port)."""


class ConfigError(RuntimeError):
    """The kubelet's CreateContainerConfigError: a Secret or key that the render does not have."""


def _expand(value: str, env: Mapping[str, str]) -> str:
    # Kubernetes expands $(VAR) from the container env; $$ escapes; unknown references stay as they are.
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


@dataclass
class ContainerPlan:
    """One container translated for local execution."""

    name: str
    argv: list[str]
    env: dict[str, str]
    probes: dict[str, dict[str, Any]]
    paths: dict[str, Path]

    def probe_argv(self, kind: str) -> list[str]:
        return list(self.probes[kind]["exec"]["command"])


class PathMap:
    """Rewrites the mount paths of one container to local directories, longest prefix first."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        self.mounts = dict(sorted(mounts.items(), key=lambda kv: -len(kv[0])))
        alternatives = "|".join(re.escape(m.rstrip("/")) for m in self.mounts)
        self._pattern = re.compile(rf"(?<![\w.\-/])({alternatives})(?=/|$|:|\s|\"|'|;)") if self.mounts else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        lookup = {m.rstrip("/"): str(p) for m, p in self.mounts.items()}
        return self._pattern.sub(lambda m: lookup[m.group(1)], text)


def plan_container(
    container: Mapping[str, Any], pod_spec: Mapping[str, Any], cluster: Cluster, volume_dirs: Mapping[str, Path]
) -> ContainerPlan:
    """Translate a rendered container: env resolved, services mapped, mount paths rewritten."""
    keys = cluster.manifests.secret_keys()
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["name"] not in keys or ref["key"] not in keys[ref["name"]]:
            raise ConfigError(f"{container['name']}: secret {ref['name']!r} has no key {ref['key']!r} in the render")
        if ref["key"] not in cluster.secret_values:
            raise ConfigError(f"no test value for secret key {ref['key']!r}")
        env[item["name"]] = cluster.secret_values[ref["key"]]
    env = _map_services(env, cluster)
    mounts = {m["mountPath"]: volume_dirs[m["name"]] for m in container.get("volumeMounts") or []}
    rewrite = PathMap(mounts)
    env = {k: rewrite(v) for k, v in env.items()}
    argv = [rewrite(_expand(str(a), env)) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if not argv:
        raise ConfigError(f"{container['name']}: no command; the image's entrypoint cannot be read from YAML")
    probes: dict[str, dict[str, Any]] = {}
    for kind in ("startup", "liveness", "readiness"):
        spec = container.get(f"{kind}Probe")
        if spec:
            if "exec" not in spec:
                raise ConfigError(f"{container['name']}: only exec probes are supported (got {sorted(spec)})")
            probes[kind] = {**spec, "exec": {"command": [rewrite(str(a)) for a in spec["exec"]["command"]]}}
    return ContainerPlan(container["name"], argv, env, probes, mounts)


def _map_services(env: dict[str, str], cluster: Cluster) -> dict[str, str]:
    result = dict(env)
    for name, namespace, ports in cluster.manifests.services():
        if name not in cluster.service_addresses:
            continue
        host, port = cluster.service_addresses[name]
        fqdn = re.compile(rf"(?<![\w.-]){re.escape(name)}\.{re.escape(namespace)}\.svc(\.[a-z0-9-]+)*(?![\w-])")
        named = False
        for key, value in list(result.items()):
            if fqdn.search(value):
                named = True
                mapped = fqdn.sub(host, value)
                for svc_port in ports:
                    mapped = mapped.replace(f"{host}:{svc_port}", f"{host}:{port}")
                result[key] = mapped
        if named:
            # A bare port next to a mapped host (REDIS_PORT=6379) is that Service's port.
            for key, value in list(result.items()):
                if value.strip() in {str(p) for p in ports}:
                    result[key] = str(port)
    return result
