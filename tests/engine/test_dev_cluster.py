"""`make dev-cluster` (docs/try-locally.md): the local cluster a newcomer tries the platform on.

The page's three blocks run verbatim in a copy of the project (its build/ links the repository's
cached kube-testenv, CRD and Pulumi builds): ``make dev-cluster`` in the background, ``source
build/dev-cluster/env.sh`` in a second shell, ``make dev-cluster-stop``. In between, the kubernetes
client checks what the page promises: three Ready kwok nodes, the default StorageClass, the KEDA and
Prometheus Operator CRDs Established, the deploy recipe's context names, and a Pulumi CLI whose
PULUMI_HOME holds the kubernetes and random providers. Then every process it started must be gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from tests.engine.conftest import CONTEXTS, REPO
from tools.dev_cluster import NODE_NAMES

PAGE = "docs/try-locally.md"
MARKER = "<!-- engine-tested: tests/engine/test_dev_cluster.py -->"
CRDS = {
    "scaledobjects.keda.sh",
    "triggerauthentications.keda.sh",
    "clustertriggerauthentications.keda.sh",
    "servicemonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
}
READY_TIMEOUT_S = float(os.environ.get("DEV_CLUSTER_READY_TIMEOUT", "3600"))  # cold builds included


def blocks() -> list[str]:
    text = (REPO / PAGE).read_text()
    found = []
    for part in text.split(MARKER + "\n")[1:]:
        block = part.split("```sh\n", 1)[1].split("```", 1)[0]
        lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
        found.append("\n".join(line for line in lines if line and not line.startswith("#")))
    return found


def lay_out(base: Path) -> Path:
    """A copy of the project whose build/ links the repository's cached builds."""
    project = base / "celery-platform"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt", "requirements-docs.txt"):
        shutil.copy2(REPO / name, project / name)
    for name in ("components", "tools", "tests", "venv", "infra", "policy"):
        (project / name).symlink_to(REPO / name)
    (project / "build").mkdir()
    for cached in ("kube-testenv", "prometheus-operator-crds", "keda-crds", "pulumi-engine"):
        (REPO / "build" / cached).mkdir(parents=True, exist_ok=True)
        (project / "build" / cached).symlink_to(REPO / "build" / cached)
    return project


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (its data dir, kubeconfig, ...)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_the_page_is_start_source_stop() -> None:
    assert blocks() == ["make dev-cluster", "source build/dev-cluster/env.sh", "make dev-cluster-stop"]


def test_make_dev_cluster_serves_nodes_storage_and_crds_until_stopped(tmp_path: Path, shared_venvs: None) -> None:
    # The copy links the repository's venv: bring its dev set up to date here, so that `make dev-cluster`
    # in the copy installs nothing (an install from the copy would point the venv's package at the copy).
    subprocess.run(["make", "-s", "venv/bin/.dev"], cwd=REPO, check=True, capture_output=True, timeout=1800)
    project = lay_out(tmp_path)
    stale = subprocess.run(["make", "-q", "venv/bin/.dev"], cwd=project, capture_output=True, check=False)
    assert stale.returncode == 0, "the project copy would reinstall the shared venv"
    start, source, stop = blocks()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PULUMI_HOME", "MAKEFLAGS", "MAKELEVEL")}
    env.setdefault("PULUMI_VENDOR_DIR", str(REPO.parent / "shared" / "vendor"))
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not (Path(p) / "pulumi").exists())  # its own CLI
    log_path = tmp_path / "dev-cluster.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", start],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    out = project / "build" / "dev-cluster"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (out / "env.sh").exists():
            assert proc.poll() is None, f"make dev-cluster exited {proc.returncode}:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no env.sh in {READY_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-4000:]}"
            time.sleep(1)
        assert "kwok pods are not real containers" in log_path.read_text()

        # The second shell: source env.sh verbatim, then what a user would check first.
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f'{source}\necho "$KUBECONFIG"\necho "$PULUMI_HOME"\npulumi plugin ls'],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert shell.returncode == 0, shell.stderr
        kubeconfig, pulumi_home, *plugins = shell.stdout.splitlines()
        assert kubeconfig == str(out / "kubeconfig") and pulumi_home == str(out / "pulumi-home")
        assert {"kubernetes", "random"} <= {line.split()[0] for line in plugins if line.strip()}, shell.stdout

        assert {c["name"] for c in yaml.safe_load(Path(kubeconfig).read_text())["contexts"]} == set(CONTEXTS)
        api_client = config.new_client_from_config(config_file=kubeconfig, context=CONTEXTS[0])
        try:
            nodes = client.CoreV1Api(api_client).list_node().items
            ready = {
                n.metadata.name
                for n in nodes
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            }
            assert ready == NODE_NAMES
            classes = client.StorageV1Api(api_client).list_storage_class().items
            assert [c.metadata.name for c in classes] == ["kwok-volume"]
            assert classes[0].metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"
            crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
            established = {
                c.metadata.name
                for c in crds
                if any(x.type == "Established" and x.status == "True" for x in c.status.conditions or [])
            }
            assert established >= CRDS, sorted(established)
        finally:
            api_client.close()

        # Stop it verbatim; it exits 0 and takes everything it started with it.
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", stop], cwd=project, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert proc.wait(120) == 0, log_path.read_text()[-4000:]
        assert "stopped (kube-testenv exit 0)" in log_path.read_text()
        assert not (out / "pid").exists() and not (out / "kubeconfig").exists()
        assert not processes_under(out / "data")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for line in processes_under(out / "data"):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
