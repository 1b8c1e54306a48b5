"""Facts about the rendered workloads: one beat, cheap probes, bounded resources, secrets only by reference."""

from __future__ import annotations

import re
from typing import Any

from tests.manifests.conftest import Render, all_containers

SECRET_ENV_NAME = re.compile(r"KEY|SECRET|PASSWORD|DSN|_URL$")
CELERY_INSPECT = re.compile(r"\bcelery\b.*\binspect\b", re.DOTALL)
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def _argv(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]


def _runs_beat(container: dict[str, Any]) -> bool:
    """A `celery beat` process, or a worker with embedded beat (-B / --beat)."""
    argv = _argv(container)
    return "beat" in argv or "-B" in argv or "--beat" in argv


def test_exactly_one_statefulset_with_one_replica_runs_beat(rendered: Render) -> None:
    runners = [d for d in rendered.documents if any(_runs_beat(c) for _, c in all_containers(d))]
    described = [f"{d['kind']}/{d['metadata']['name']}" for d in runners]
    assert len(runners) == 1, f"beat runs in {described}"
    [beat] = runners
    assert beat["kind"] == "StatefulSet", f"beat runs in {described}, not in a StatefulSet"
    assert beat["spec"]["replicas"] == 1
    for where, container in all_containers(beat):
        argv = _argv(container)
        assert "-B" not in argv and "--beat" not in argv, f"{where} embeds beat in a worker: {argv}"
    autoscalers = rendered.of_kind("HorizontalPodAutoscaler")
    assert not [h for h in autoscalers if h["spec"]["scaleTargetRef"]["name"] == beat["metadata"]["name"]], (
        "an autoscaler could add a second beat"
    )


def test_no_deployment_runs_beat(rendered: Render) -> None:
    for deployment in rendered.of_kind("Deployment"):
        for where, container in all_containers(deployment):
            assert not _runs_beat(container), f"{where} runs beat: {_argv(container)}"


def test_no_probe_reads_proc_or_asks_the_broker_with_celery_inspect(rendered: Render) -> None:
    checked = 0
    for doc in rendered.documents:
        for where, container in all_containers(doc):
            for probe_name in PROBES:
                probe = container.get(probe_name)
                if probe is None:
                    continue
                command = " ".join(str(part) for part in (probe.get("exec") or {}).get("command") or [])
                assert "/proc" not in command, f"{where}.{probe_name} reads /proc: {command}"
                assert not CELERY_INSPECT.search(command), f"{where}.{probe_name} runs celery inspect: {command}"
                checked += 1
    assert checked, "the stack renders no probes at all"


def test_every_container_and_init_container_requests_and_limits_cpu_and_memory(rendered: Render) -> None:
    missing = []
    containers = [pair for doc in rendered.documents for pair in all_containers(doc)]
    assert any(".initContainers[" in where for where, _ in containers), "the stack renders no init containers"
    for where, container in containers:
        resources = container.get("resources") or {}
        for side in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not str((resources.get(side) or {}).get(resource) or ""):
                    missing.append(f"{where}.resources.{side}.{resource}")
    assert not missing, "unset: " + ", ".join(missing)


def test_every_secret_named_env_var_comes_from_a_secret_key_ref_that_exists(rendered: Render) -> None:
    secrets = {
        s["metadata"]["name"]: set(s.get("stringData") or {}) | set(s.get("data") or {})
        for s in rendered.of_kind("Secret")
    }
    checked = 0
    for doc in rendered.documents:
        for where, container in all_containers(doc):
            for env in container.get("env") or []:
                if not SECRET_ENV_NAME.search(env["name"].upper()):
                    continue
                checked += 1
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                assert "value" not in env and ref, f"{where}.env[{env['name']}] is not a secretKeyRef: {env}"
                assert ref["key"] in secrets.get(ref["name"], set()), (
                    f"{where}.env[{env['name']}] refers to {ref['name']}/{ref['key']}, which the stack does not render"
                )
    assert checked, "the stack renders no secret-named env vars"


def test_the_secret_env_name_pattern_matches_the_names_the_brief_lists() -> None:
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "REDIS_PASSWORD", "SENTRY_DSN", "DATABASE_URL", "API_KEYS"):
        assert SECRET_ENV_NAME.search(name), name
    for name in ("REDIS_HOST", "PYTHONPATH", "CELERY_PLATFORM_READY_FILE", "URL_PREFIX"):
        assert not SECRET_ENV_NAME.search(name), name
