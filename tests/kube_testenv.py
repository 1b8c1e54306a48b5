"""kube-testenv as a test fixture: build it, start it, wait until it is ready, and stop it cleanly.

Shared by the cluster tier (tests/cluster) and the engine tier (tests/engine). A build failure FAILS
the tests: there is no fallback and no skip.

Environment: KUBE_TESTENV_ARGS (extra kube-testenv flags, e.g.
``--apiserver-arg=--feature-gates=X=true``), KUBE_TESTENV_STARTUP_TIMEOUT (s, default 180),
KUBE_TESTENV_BUILD_TIMEOUT (s, default 3600).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SH = REPO_ROOT / "tools" / "kube-testenv" / "build.sh"
STARTUP_TIMEOUT_S = float(os.environ.get("KUBE_TESTENV_STARTUP_TIMEOUT", "180"))
BUILD_TIMEOUT_S = float(os.environ.get("KUBE_TESTENV_BUILD_TIMEOUT", "3600"))
STOP_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- processes


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _proc_stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, starttime) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    # fields after "comm": state(3) ppid(4) ... starttime(22)
    return int(rest[1]), rest[0], int(rest[19])


def _descendants(root: int) -> dict[int, int]:
    """pid -> starttime of every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_stat(int(entry))
        if st is None:
            continue
        children.setdefault(st[0], []).append(int(entry))
        starts[int(entry)] = st[2]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            if kid not in found:
                found[kid] = starts[kid]
                todo.append(kid)
    return found


def _survivors(pids: dict[int, int]) -> list[str]:
    alive = []
    for pid, start in pids.items():
        st = _proc_stat(pid)
        if st is None or st[2] != start or st[1] in ("Z", "X"):
            continue  # gone (or the pid was reused by an unrelated process)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        alive.append(f"{pid}: {cmdline.strip()}")
    return alive


def _die_with_parent() -> None:
    """preexec_fn: PR_SET_PDEATHSIG(SIGKILL), so a killed pytest leaves nothing behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def run_build_script(script: Path, log_path: Path, timeout_s: float) -> Path:
    """Run one of our cached build scripts; return the path it prints last. Fails the session (no skip)."""
    name = script.relative_to(REPO_ROOT)
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.run(
                ["bash", str(script)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} took longer than {timeout_s:.0f}s\n{_tail(log_path)}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{name} failed (exit {proc.returncode}):\n{_tail(log_path, 80)}", pytrace=False)
    lines = proc.stdout.decode().strip().splitlines()
    built = Path(lines[-1]) if lines else Path()
    if not lines or not built.exists():
        pytest.fail(f"{name} printed no usable path: {proc.stdout!r}", pytrace=False)
    return built


def build_kube_testenv(log_path: Path) -> Path:
    """Run build.sh; return the binary. Fails the test session if the build fails."""
    binary = run_build_script(BUILD_SH, log_path, BUILD_TIMEOUT_S)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"tools/kube-testenv/build.sh printed no executable: {binary}", pytrace=False)
    return binary


@dataclass
class KubeAPI:
    kubeconfig: Path
    api_client: client.ApiClient
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def apply(self, docs: list[dict[str, Any]], field_manager: str = "celery-platform") -> list[dict[str, Any]]:
        return apply_manifests(self.api_client, docs, field_manager=field_manager)

    def wait_for_default_service_account(self, namespace: str, timeout_s: float = 60.0) -> None:
        wait_for_default_service_account(self.api_client, namespace, timeout_s)

    def logs_tail(self, lines: int = 60) -> str:
        parts = [f"==== {self.log_path} ====\n{_tail(self.log_path, lines)}"]
        for name in ("apiserver.log", "controller-manager.log", "scheduler.log", "kwok.log", "etcd.log"):
            p = self.data_dir / "logs" / name
            if p.exists():
                parts.append(f"==== {p} ====\n{_tail(p, lines)}")
        return "\n".join(parts)


@contextlib.contextmanager
def running_kube_testenv(base: Path, extra_args: Sequence[str] = ()) -> Iterator[KubeAPI]:
    """Build and start kube-testenv under ``base``; yield it ready; stop it and check nothing survives."""
    binary = build_kube_testenv(base / "build.log")
    data_dir = base / "data"
    kubeconfig = base / "kubeconfig"
    log_path = base / "kube-testenv.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [
            str(binary),
            "run",
            f"--data-dir={data_dir}",
            f"--kubeconfig-out={kubeconfig}",
            *extra_args,
            *shlex.split(os.environ.get("KUBE_TESTENV_ARGS", "")),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    env = KubeAPI(kubeconfig, None, data_dir, log_path, proc)
    seen: dict[int, int] = {}

    def stop() -> int | None:
        seen.update(_descendants(proc.pid))
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                seen.update(_descendants(proc.pid))
                proc.kill()
                proc.wait()
                log.close()
                return None
        log.close()
        return proc.returncode

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not kubeconfig.exists():
        seen.update(_descendants(proc.pid))
        if proc.poll() is not None:
            log.close()
            pytest.fail(
                f"kube-testenv exited with {proc.returncode} before it was ready\n{env.logs_tail()}",
                pytrace=False,
            )
        if time.monotonic() > deadline:
            stop()
            pytest.fail(
                f"kube-testenv not ready within {STARTUP_TIMEOUT_S:.0f}s\n{env.logs_tail()}",
                pytrace=False,
            )
        time.sleep(0.2)

    env.api_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        client.CoreV1Api(env.api_client).list_namespace(_request_timeout=10)
        seen.update(_descendants(proc.pid))
        yield env
    finally:
        env.api_client.close()
        rc = stop()
        left = _survivors(seen)
        for pid in seen:  # never leave anything running, even when the assertions fail
            with contextlib.suppress(ProcessLookupError):
                if _survivors({pid: seen[pid]}):
                    os.kill(pid, signal.SIGKILL)
        assert rc == 0, f"kube-testenv did not stop cleanly on SIGTERM (exit {rc})\n{env.logs_tail(30)}"
        assert not left, f"processes survived kube-testenv shutdown: {left}"


# --------------------------------------------------------------------------- apply


_DISCOVERY_CACHE: dict[tuple[int, str], dict[str, tuple[str, bool]]] = {}


def _resources(api_client: client.ApiClient, api_version: str) -> dict[str, tuple[str, bool]]:
    """kind -> (plural, namespaced) for one group/version, from the server's discovery."""
    key = (id(api_client), api_version)
    if key not in _DISCOVERY_CACHE:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        data = _request(api_client, "GET", path)
        table: dict[str, tuple[str, bool]] = {}
        for res in data.get("resources", []):
            if "/" not in res["name"]:  # skip subresources
                table[res["kind"]] = (res["name"], bool(res["namespaced"]))
        _DISCOVERY_CACHE[key] = table
    return _DISCOVERY_CACHE[key]


def _request(
    api_client: client.ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    resp = api_client.call_api(
        path,
        method,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=30,
    )
    raw = resp.data if hasattr(resp, "data") else resp
    return json.loads(raw) if raw else {}


def resource_path(api_client: client.ApiClient, doc: dict[str, Any]) -> str:
    """REST path of the object described by ``doc`` (apiVersion, kind, metadata)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    name = doc["metadata"]["name"]
    table = _resources(api_client, api_version)
    if kind not in table:
        raise LookupError(f"the server does not serve kind {kind} in {api_version}")
    plural, namespaced = table[kind]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        ns = doc["metadata"].get("namespace") or "default"
        return f"{prefix}/namespaces/{ns}/{plural}/{name}"
    return f"{prefix}/{plural}/{name}"


def apply_manifests(
    api_client: client.ApiClient, docs: list[dict[str, Any]], field_manager: str = "celery-platform"
) -> list[dict[str, Any]]:
    """Server-side apply each document, in order (force, fieldValidation=Strict); return the served objects.

    The REST path is resolved from apiVersion/kind through the server's discovery, so any
    served kind works. Raises ``ApiException`` (with the server's message) on rejection.
    """
    served = []
    for doc in docs:
        if not doc:
            continue
        path = resource_path(api_client, doc)
        try:
            served.append(
                _request(
                    api_client,
                    "PATCH",
                    path,
                    query=[("fieldManager", field_manager), ("force", "true"), ("fieldValidation", "Strict")],
                    body=doc,
                    content_type="application/apply-patch+yaml",
                )
            )
        except ApiException as exc:
            exc.reason = f"{exc.reason}: applying {doc['kind']} {path}"
            raise
    return served


def wait_for_default_service_account(api_client: client.ApiClient, namespace: str, timeout_s: float = 60.0) -> None:
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def dry_run_create(api_client: client.ApiClient, doc: dict[str, Any]) -> dict[str, Any]:
    """Create ``doc`` with ``dryRun=All`` and ``fieldValidation=Strict``: the server validates and admits it,
    stores nothing, and returns the object it would have stored. JSON, not apply's YAML, so that every string
    reaches the server unchanged. Raises ``ApiException`` (with the server's message) on rejection."""
    path = resource_path(api_client, doc).rsplit("/", 1)[0]
    return _request(
        api_client,
        "POST",
        path,
        query=[("dryRun", "All"), ("fieldValidation", "Strict")],
        body=doc,
        content_type="application/json",
    )
