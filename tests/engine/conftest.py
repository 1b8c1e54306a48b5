"""Engine tier: the real Pulumi CLI, language host and providers against a cluster whose pods run.

- The toolchain comes from ``tools/pulumi-engine/build.sh`` (the CLI from the Go module proxy, the
  Python host and the kubernetes and random providers from shared/vendor), with plugins in a
  PULUMI_HOME of its own and automatic plugin download off. A failed build FAILS the tier.
- The cluster is ``tools/kube-testenv`` with kube-scheduler and kwok: fake nodes with real capacity,
  labels and a taint, whose pods kwok marks running and ready, and kwok's PersistentVolume
  provisioner as the default StorageClass. So the provider's await logic runs to a true success.
- Each test gets a copy of this project in a temp directory (the stack files are copied, the program,
  package, policy pack and venvs are linked), a file backend there, and ``HOME`` there too, so the
  README's commands run verbatim and nothing touches the committed stack files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.keda_tools import keda_crds
from tests.kube_testenv import KubeAPI, build_kube_testenv, run_build_script, running_kube_testenv
from tests.operator_crds import install_crds, install_operator_crds

REPO = Path(__file__).resolve().parents[2]
ENGINE_BUILD = REPO / "tools" / "pulumi-engine" / "build.sh"
ENGINE_BUILD_TIMEOUT_S = float(os.environ.get("PULUMI_ENGINE_BUILD_TIMEOUT", "5400"))
PASSPHRASE = "engine-tier-passphrase"
# The kube contexts the README's walkthrough names; both point at the test cluster.
CONTEXTS = ("my-dev-cluster", "my-prod-cluster")
COPIED = ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "Makefile", "pyproject.toml")
LINKED = ("infra", "components", "policy", "venv", "provider", "tools", "examples")

# Three fake nodes in two zones, sized like small cloud nodes; one is tainted, so only pods that
# tolerate the taint may land there.
NODES = [
    {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zone,
                "type": "kwok",
            },
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110", "ephemeral-storage": "95Gi"},
        },
    }
    for name, zone, taints in (
        ("kwok-node-a", "zone-a", []),
        ("kwok-node-b", "zone-b", []),
        ("kwok-node-gpu", "zone-a", [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
]
# kwok's own default-class StorageClass (kustomize/stage/volume/fast), served by its Stages.
STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "kwok-volume", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kwok.x-k8s.io/volume",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


@dataclass(frozen=True)
class Toolchain:
    """The built Pulumi CLI and language host (``bin``) and the PULUMI_HOME holding the providers."""

    bin: Path
    home: Path


def build_pulumi_engine(log_path: Path) -> Toolchain:
    """Run tools/pulumi-engine/build.sh; fail the session (no skip) if it fails."""
    bin_dir = run_build_script(ENGINE_BUILD, log_path, ENGINE_BUILD_TIMEOUT_S)
    if not (bin_dir / "pulumi").is_file():
        pytest.fail(f"tools/pulumi-engine/build.sh printed no toolchain: {bin_dir}", pytrace=False)
    return Toolchain(bin_dir, bin_dir.parent / "home")


@pytest.fixture(scope="session")
def toolchain(tmp_path_factory: pytest.TempPathFactory) -> Toolchain:
    return build_pulumi_engine(tmp_path_factory.mktemp("pulumi-engine") / "build.log")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    """kube-testenv with kube-scheduler, kwok, three fake nodes and a default StorageClass."""
    base = tmp_path_factory.mktemp("engine-cluster")
    tools = build_kube_testenv(base / "build.log").parent
    args = ["--scheduler", f"--kwok={tools / 'kwok'}", f"--kwok-config={tools / 'kwok-stages.yaml'}"]
    with running_kube_testenv(base, args) as env:
        env.apply([*NODES, STORAGE_CLASS])
        # The platform's ServiceMonitor and PrometheusRule need the Prometheus Operator's CRDs, and an
        # autoscaled pool's ScaledObject and TriggerAuthentication need KEDA's.
        install_operator_crds(env)
        install_crds(env, keda_crds())
        core = client.CoreV1Api(env.api_client)
        deadline = time.monotonic() + 60
        while True:
            ready = {
                n.metadata.name
                for n in core.list_node().items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            }
            if ready >= {n["metadata"]["name"] for n in NODES}:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"kwok did not make the nodes Ready in 60 s (ready: {ready})\n{env.logs_tail()}")
            time.sleep(0.5)
        yield env


def _kubeconfig_with_contexts(source: Path, target: Path) -> None:
    """Copy the test cluster's kubeconfig, with the README's context names pointing at it."""
    doc = yaml.safe_load(source.read_text())
    context = doc["contexts"][0]["context"]
    doc["contexts"] = [{"name": name, "context": dict(context)} for name in CONTEXTS]
    doc["current-context"] = CONTEXTS[0]
    target.write_text(yaml.safe_dump(doc))


@dataclass
class Project:
    """A copy of this project in a temp dir, with the environment the engine runs in."""

    dir: Path
    env: dict[str, str]
    api: KubeAPI
    log: list[str] = field(default_factory=list)

    def sh(self, command: str, *, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run one shell command line in the project, as a user would type it."""
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        self.log.append(f"$ {command}  # exit {proc.returncode} in {time.monotonic() - started:.1f}s")
        if check and proc.returncode != 0:
            pytest.fail(
                f"`{command}` exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
                f"--- stderr ---\n{proc.stderr[-4000:]}",
                pytrace=False,
            )
        return proc

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run ``pulumi <args>`` non-interactively."""
        quoted = " ".join(_quote(a) for a in args)
        return self.sh(f"pulumi --non-interactive {quoted}", check=check, timeout=timeout)

    def preview_steps(self, stack: str) -> dict[str, str]:
        """``pulumi preview --json``: URN -> op for every step that is not a same."""
        out = self.pulumi("preview", "--stack", stack, "--json").stdout
        steps = json.loads(out).get("steps", [])
        return {s["urn"]: s["op"] for s in steps if s["op"] != "same"}

    def stack_file(self, stack: str) -> dict[str, Any]:
        return dict(yaml.safe_load((self.dir / f"Pulumi.{stack}.yaml").read_text()))

    def set_config(self, stack: str, key: str, value: Any) -> None:
        """Set ``key`` to a string, or to a YAML object (a structured key) given as a dict or list."""
        if isinstance(value, str):
            # `--`: a value may start with "-", which the CLI would read as a flag.
            self.pulumi("config", "set", "--stack", stack, "--", key, value)
            return
        # An object value whole, as `pulumi config --json` prints it: the CLI's one way to set a map or list.
        payload = {key: {"value": json.dumps(value), "objectValue": value, "secret": False}}
        self.pulumi("config", "set-all", "--stack", stack, "--json", json.dumps(payload))

    def init_stack(self, stack: str, database_url: str) -> None:
        """What the README tells users to do once per stack (without `make venv` and login)."""
        self.pulumi("stack", "init", stack)
        self.pulumi("config", "set", "kubernetes:context", f"my-{stack}-cluster", "--stack", stack)
        self.pulumi("config", "set", "--secret", "databaseUrl", database_url, "--stack", stack)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def engine_env(toolchain: Toolchain, home: Path, kubeconfig: Path, extra: Mapping[str, str] = ()) -> dict[str, str]:  # type: ignore[assignment]
    """The environment of a user with the Pulumi CLI installed, and nothing downloaded."""
    pulumi_home = home / ".pulumi-home"
    pulumi_home.mkdir(parents=True, exist_ok=True)
    plugins = pulumi_home / "plugins"
    if not plugins.exists():
        plugins.symlink_to(toolchain.home / "plugins")
    env = {
        "HOME": str(home),
        # The Python that made ./venv comes first: the language host runs `python3 -m venv` with it.
        "PATH": f"{toolchain.bin}:{Path(sys.base_prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PULUMI_HOME": str(pulumi_home),
        "KUBECONFIG": str(kubeconfig),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PYTHONUNBUFFERED": "1",
        "GIT_AUTHOR_NAME": "engine tier",
        "GIT_AUTHOR_EMAIL": "engine@celery-platform.invalid",
        "GIT_COMMITTER_NAME": "engine tier",
        "GIT_COMMITTER_EMAIL": "engine@celery-platform.invalid",
        "LANG": "C.UTF-8",
    }
    env.update(dict(extra))
    return env


def prepare_shared_venvs() -> None:
    """Bring ./venv and policy/venv up to date in the repository, which every project copy links.

    Two engine processes run side by side (``make pytest``): a lock keeps one from building a venv
    while the other builds or uses it.
    """
    lock_path = REPO / "build" / "engine-venvs.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for target in ("venv/bin/.runtime", "policy/venv/.installed"):
            subprocess.run(["make", "-s", target], cwd=REPO, check=True, timeout=1800, capture_output=True)


def make_project(base: Path, toolchain: Toolchain, api: KubeAPI, *, login: bool = True) -> Project:
    """Lay out a copy of this project under ``base``; with ``login``, log in to a file backend there."""
    project = base / "celery-platform"
    project.mkdir(parents=True)
    for name in COPIED:
        shutil.copy2(REPO / name, project / name)
    for name in ("requirements.txt", "requirements-dev.txt"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, project / name)
    for name in LINKED:
        (project / name).symlink_to(REPO / name)
    home = base / "home"
    home.mkdir()
    kubeconfig = base / "kubeconfig"
    _kubeconfig_with_contexts(api.kubeconfig, kubeconfig)
    env = engine_env(toolchain, home, kubeconfig, {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE})
    proj = Project(project, env, api)
    # A repository of its own, as a team's is: the walkthrough commits the stack file it wrote.
    proj.sh("git init -q && git add -A && git commit -q -m 'celery-platform'")
    if login:
        proj.sh('mkdir -p ~/.pulumi-state && pulumi login "file://$HOME/.pulumi-state"')
    return proj


@contextlib.contextmanager
def brought_up(
    project: Project, stack: str, database_url: str, config: Mapping[str, Any] | None = None
) -> Iterator[Project]:
    """The stack initialised as the README says, ``config`` set, `make up`; unprotected and destroyed after."""
    project.init_stack(stack, database_url)
    for key, value in (config or {}).items():
        project.set_config(stack, key, value)
    project.sh(f"make up STACK={stack}", timeout=1200)
    try:
        yield project
    finally:
        project.pulumi("state", "unprotect", "--stack", stack, "--all", "--yes", check=False)
        project.pulumi("destroy", "--stack", stack, "--yes", check=False)


@pytest.fixture(scope="session")
def shared_venvs() -> None:
    prepare_shared_venvs()


@pytest.fixture
def project(tmp_path: Path, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None) -> Project:
    return make_project(tmp_path, toolchain, cluster)
