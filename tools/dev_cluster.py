"""A local cluster to try the platform on, with no cloud: ``make dev-cluster`` (docs/try-locally.md).

It is the engine tier's cluster, for a person: this repository's kube-apiserver, kube-controller-manager
and etcd (tools/kube-testenv) with kube-scheduler and kwok, the same three fake nodes and default
StorageClass as tests/engine/conftest.py, and the CRDs of the Prometheus Operator (tools/promtool/crds.sh)
and of KEDA (tools/keda/crds.sh: from KEDA's Go module, nothing compiled). kwok marks pods running and
ready: no container runs and no image is pulled.

When everything is ready it writes, under ``--dir``:

- ``kubeconfig``, whose contexts ``my-dev-cluster`` and ``my-prod-cluster`` (the names the deploy
  recipe sets) both point at this cluster;
- ``env.sh``, the ``export`` lines for a shell: KUBECONFIG, a PULUMI_HOME of its own (so that a
  ``pulumi login`` here never touches yours) and, when no ``pulumi`` is on PATH, this repository's
  Pulumi CLI (tools/pulumi-engine) with its providers;
- ``pid``, for ``make dev-cluster-stop``.

Then it stays up until SIGINT (Ctrl-C) or SIGTERM, and stops every process it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config

from tests.engine.conftest import CONTEXTS, NODES, STORAGE_CLASS
from tests.kube_testenv import apply_manifests
from tests.operator_crds import load_crds

READY_TIMEOUT_S = 180.0
NODE_NAMES = {node["metadata"]["name"] for node in cast(list[dict[str, Any]], NODES)}
STORAGE_CLASS_NAME = cast(dict[str, Any], STORAGE_CLASS)["metadata"]["name"]


def say(message: str) -> None:
    print(f"dev-cluster: {message}", file=sys.stderr, flush=True)


def built(script: str) -> Path:
    """Run one of our cached build or fetch scripts (relative to the project root); return its last line."""
    done = subprocess.run(["bash", script], stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"dev-cluster: {script} failed (exit {done.returncode}); its messages are above")
    return Path(lines[-1])


def wait_until(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        if proc.poll() is not None:
            raise SystemExit(f"dev-cluster: kube-testenv exited ({proc.returncode}) before {what}; see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"dev-cluster: no {what} after {READY_TIMEOUT_S:.0f}s; see {log}")
        time.sleep(0.5)


def established(api: client.ApiextensionsV1Api, names: set[str]) -> bool:
    ready = set()
    for crd in api.list_custom_resource_definition().items:
        if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []):
            ready.add(crd.metadata.name)
    return names <= ready


def nodes_ready(core: client.CoreV1Api) -> bool:
    ready = {
        n.metadata.name
        for n in core.list_node().items
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    }
    return ready >= NODE_NAMES


def pulumi_env(root: Path, pulumi_home: Path) -> list[str]:
    """The Pulumi lines of env.sh: your CLI if one is on PATH, else this repository's toolchain."""
    pulumi_home.mkdir(parents=True, exist_ok=True)
    lines = [f"export PULUMI_HOME={pulumi_home}", "export PULUMI_SKIP_UPDATE_CHECK=true"]
    if shutil.which("pulumi"):
        say(f"using the pulumi on PATH ({shutil.which('pulumi')}); it fetches its plugins into {pulumi_home}")
        return lines
    say("no pulumi on PATH: building (once, cached) this repository's Pulumi CLI and providers; cold, about an hour")
    bin_dir = built("tools/pulumi-engine/build.sh")
    plugins = pulumi_home / "plugins"
    if not plugins.exists():
        plugins.symlink_to(bin_dir.parent / "home" / "plugins")
    return [
        f"export PATH={bin_dir}:$PATH",
        *lines,
        "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true PULUMI_IGNORE_AMBIENT_PLUGINS=true",
    ]


def kubeconfig_with_contexts(source: Path, target: Path) -> None:
    doc = yaml.safe_load(source.read_text())
    context = doc["contexts"][0]["context"]
    doc["contexts"] = [{"name": name, "context": dict(context)} for name in CONTEXTS]
    doc["current-context"] = CONTEXTS[0]
    tmp = target.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    tmp.chmod(0o600)
    tmp.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("build/dev-cluster"), help="where its files go")
    args = parser.parse_args(argv)
    root = Path.cwd()
    out: Path = (root / args.dir).absolute()
    if (out / "pid").exists():
        pid = (out / "pid").read_text().strip()
        if pid and Path(f"/proc/{pid}").exists():
            raise SystemExit(f"dev-cluster: already running from {out} (pid {pid}); `make dev-cluster-stop` stops it")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("kubeconfig", "env.sh", "pid"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "data", ignore_errors=True)  # a fresh cluster each time: its etcd is the previous run's

    say("building (once, cached) kube-testenv and kwok; cold, about 7 minutes")
    binary = built("tools/kube-testenv/build.sh")
    keda = built("tools/keda/crds.sh")
    operator = built("tools/promtool/crds.sh")
    crds = load_crds(operator) + load_crds(keda)
    env_lines = pulumi_env(root, out / "pulumi-home")

    internal = out / "data" / "kubeconfig"
    log = out / "kube-testenv.log"
    tools = binary.parent
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [
                str(binary),
                "run",
                f"--data-dir={out / 'data'}",
                f"--kubeconfig-out={internal}",
                "--scheduler",
                f"--kwok={tools / 'kwok'}",
                f"--kwok-config={tools / 'kwok-stages.yaml'}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        )
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        wait_until("API server", internal.exists, proc, log)
        api_client = config.new_client_from_config(config_file=str(internal))
        apply_manifests(api_client, [*NODES, STORAGE_CLASS, *crds])
        core = client.CoreV1Api(api_client)
        extensions = client.ApiextensionsV1Api(api_client)
        wait_until("Ready nodes", lambda: nodes_ready(core), proc, log)
        wait_until(
            "Established CRDs", lambda: established(extensions, {c["metadata"]["name"] for c in crds}), proc, log
        )
        api_client.close()

        kubeconfig = out / "kubeconfig"
        kubeconfig_with_contexts(internal, kubeconfig)
        (out / "env.sh").write_text("\n".join([f"export KUBECONFIG={kubeconfig}", *env_lines]) + "\n")
        (out / "pid").write_text(f"{os.getpid()}\n")
        print(
            f"dev-cluster: ready: {len(NODES)} kwok nodes, StorageClass {STORAGE_CLASS_NAME} (default),"
            f" {len(crds)} CRDs (KEDA, Prometheus Operator). kwok pods are not real containers.\n"
            f"In another shell, from {root}:\n\n"
            f"  source {out / 'env.sh'}\n\n"
            f"which sets:\n  export KUBECONFIG={kubeconfig}\n"
            + "".join(f"  {line}\n" for line in env_lines)
            + "\nCtrl-C or `make dev-cluster-stop` stops it.",
            flush=True,
        )
        while not stopping and proc.poll() is None:
            time.sleep(0.5)
    finally:
        for name in ("pid", "env.sh", "kubeconfig"):
            (out / name).unlink(missing_ok=True)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if not stopping:
        raise SystemExit(f"dev-cluster: kube-testenv exited ({proc.returncode}); see {log}")
    say(f"stopped (kube-testenv exit {proc.returncode})")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
