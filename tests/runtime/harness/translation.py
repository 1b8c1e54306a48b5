"""A rendered container translated for local execution: the stand-ins for what a cluster provides.

Only these translations happen:

* ``secretKeyRef``: the Secret and key must exist in the render; the value comes from test values
  (the render prints secrets only as ``<secret>``).
* Services: an env value naming a rendered Service (``<svc>.<ns>.svc.<domain>``, alone or inside a URL)
  is mapped to a local address, and so is the Service's port in a container that names it.
* Volumes: emptyDir and ConfigMap volumes become per-pod directories (ConfigMap keys written as
  files, by the pod); every mount path is rewritten to its directory in command, args, env and probe argv.
* The image: the argv runs with cwd = the sample app (the image's WORKDIR); see ``processes`` for its PATH.
* ``$(VAR)`` references in command and args are expanded from the container env, as the kubelet does.
* httpGet probes become an argv that GETs the same path on 127.0.0.1 (the pod's IP here).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.runtime.harness.render import REPO, Manifests

SAMPLE_APP_DIR = REPO / "examples" / "sample_app"


@dataclass(frozen=True)
class Cluster:
    """What the cluster would provide: Secret values by key, and local addresses of Services."""

    manifests: Manifests
    secret_values: Mapping[str, str]
    """Test value of each Secret key (``CELERY_BROKER_URL``, ``SECRET_KEY``, ...)."""
    service_addresses: Mapping[str, tuple[str, int]]
    """Service name → local (host, port)."""
    external_secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Secrets that exist in the cluster but not in the render (an external broker's): name → key → value."""
    host_addresses: Mapping[str, str] = field(default_factory=dict)
    """Hosts outside the cluster (an external broker) → the local address that stands in for them."""
    image_paths: Mapping[str, Path] = field(default_factory=dict)
    """Directories of the image (``/app``) → local directories, rewritten like mount paths."""
    image_workdir: Path | None = None
    """The image's WORKDIR, the cwd of every process. Default: the sample app's directory."""

    @property
    def workdir(self) -> Path:
        return self.image_workdir or SAMPLE_APP_DIR


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
        external = cluster.external_secrets.get(ref["name"], {})
        if ref["key"] in external:
            env[item["name"]] = external[ref["key"]]
            continue
        if ref["name"] not in keys or ref["key"] not in keys[ref["name"]]:
            raise ConfigError(f"{container['name']}: secret {ref['name']!r} has no key {ref['key']!r} in the render")
        if ref["key"] not in cluster.secret_values:
            raise ConfigError(f"no test value for secret key {ref['key']!r}")
        env[item["name"]] = cluster.secret_values[ref["key"]]
    env = _map_services(env, cluster)
    for host, local in cluster.host_addresses.items():
        env = {k: v.replace(host, local) for k, v in env.items()}
    mounts = {m["mountPath"]: volume_dirs[m["name"]] for m in container.get("volumeMounts") or []}
    rewrite = PathMap({**cluster.image_paths, **mounts})
    env = {k: rewrite(v) for k, v in env.items()}
    argv = [rewrite(_expand(str(a), env)) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if not argv:
        raise ConfigError(f"{container['name']}: no command; the image's entrypoint cannot be read from YAML")
    probes: dict[str, dict[str, Any]] = {}
    for kind in ("startup", "liveness", "readiness"):
        spec = container.get(f"{kind}Probe")
        if spec and "httpGet" in spec:
            probes[kind] = {**spec, "exec": {"command": _http_get_argv(container, spec["httpGet"])}}
            del probes[kind]["httpGet"]
        elif spec:
            if "exec" not in spec:
                raise ConfigError(
                    f"{container['name']}: only exec and httpGet probes are supported (got {sorted(spec)})"
                )
            probes[kind] = {**spec, "exec": {"command": [rewrite(str(a)) for a in spec["exec"]["command"]]}}
    return ContainerPlan(container["name"], argv, env, probes, mounts)


# The kubelet's httpGet: success on a status from 200 to 399. urlopen raises on 400 and above.
_HTTP_GET = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))"


def _http_get_argv(container: Mapping[str, Any], http_get: Mapping[str, Any]) -> list[str]:
    """Translate an httpGet probe into an argv that GETs the same path on 127.0.0.1 (the pod's IP here)."""
    port = http_get["port"]
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        if port not in named:
            raise ConfigError(f"{container['name']}: probe port {port!r} is not a named container port")
        port = named[port]
    return [sys.executable, "-c", _HTTP_GET, f"http://127.0.0.1:{int(port)}{http_get.get('path', '/')}", "5"]


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


def test_secret_values(redis_password: str, broker_host: str, broker_port: int) -> dict[str, str]:
    """Valid test values for every key of the rendered Secrets.

    The broker URL is shaped as the program builds it (from the Service's cluster FQDN), so the
    Service mapping is what points it at the local Redis.
    """
    from cryptography.fernet import Fernet

    return {
        "CELERY_BROKER_URL": f"redis://:{redis_password}@{broker_host}:{broker_port}/0",
        "REDIS_PASSWORD": redis_password,
        "SECRET_KEY": "runtime-test-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789" * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgresql://app:app-password@db.invalid:5432/app",
        "SENTRY_DSN": "",
    }


test_secret_values.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
