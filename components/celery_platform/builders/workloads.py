"""Pure pod-spec builders for the broker, the worker pools and beat: no Pulumi resources here.

The specs they are built from are in ``celery_platform.config.specs``.

``build_pod_spec`` serves both worker and beat. Every value a probe, a command or the admission
arithmetic relies on is computed here, so plain pytest checks it and the components only wire it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery_platform.builders import probes
from celery_platform.builders.broker import broker_url_env, ca_volume
from celery_platform.config.broker import BrokerTLS, SentinelClient
from celery_platform.config.specs import BeatSpec, PodResources, PoolSpec, max_memory_per_child_kib
from celery_platform.config.volumes import BROKER_CA_MOUNT, HOOKS_MOUNT_PATH, TMP_MOUNT

STATE_DIR = "/tmp/celery-platform"
REDIS_PORT = 6379
REDIS_DATA = "/data"


def worker_args(app: str, pool: PoolSpec, memory_volume_bytes: int = 0) -> list[str]:
    """Return the worker's args after ``celery``: every flag that the report's failures call for."""
    per_child = (
        ["--max-memory-per-child", str(max_memory_per_child_kib(pool.resources, pool.concurrency, memory_volume_bytes))]
        if pool.pool_type == "prefork"
        else []
    )
    return [
        "-A",
        app,
        "worker",
        "-Q",
        ",".join(pool.queues),
        "-n",
        f"{pool.name}@%h",
        "--pool",
        pool.pool_type,
        "--concurrency",
        str(pool.concurrency),
        *per_child,
        "--prefetch-multiplier",
        "1",
        # Mingle makes workers that start together wait on each other; gossip is n^2 broker chatter.
        "--without-mingle",
        "--without-gossip",
        # Task events (-E) feed the exporter's per-task counters and active/reserved gauges: about four
        # small PUBLISHes per task, fire-and-forget (Redis drops them when no exporter listens).
        "--task-events",
        "--loglevel",
        pool.log_level.upper(),
        *probes.worker_include_args(),
        *pool.extra_args,
    ]


@dataclass(frozen=True, kw_only=True)
class Refs:
    """Names and addresses the pods reference, plain strings or Pulumi Outputs."""

    secret_name: Any
    """The PlatformSecrets Secret."""
    secret_keys: Sequence[str]
    """Keys present in that Secret."""
    broker_secret_name: Any
    """The broker's Secret that holds its URL."""
    broker_host: Any
    """The broker's host name, from its Service or the external broker's settings."""
    hooks_config_map: Any = None
    """The ConfigMap holding the hooks module (workers and beat)."""
    broker_secret_key: str = "CELERY_BROKER_URL"
    """The key of the URL in the broker's Secret."""
    broker_port: int = REDIS_PORT
    """The broker's port."""
    broker_tls: BrokerTLS | None = None
    """TLS to the broker (``rediss://``), with its CA when not a public one. Default: plain ``redis://``."""
    broker_sentinel: SentinelClient | None = None
    """The master's name, the Sentinels and their password, for a Sentinel-fronted broker. Default: none."""


def secret_env(name: str, secret: Any, key: str, optional: bool = False) -> dict[str, Any]:
    """Return an env entry read from a Secret key (never a literal value)."""
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def app_env(refs: Refs, longest_task_seconds: int) -> list[dict[str, Any]]:
    """Return the env every Celery container gets: secrets by reference, then task timing settings."""
    from celery_platform.builders.secret_keys import DATABASE_URL, FIELD_ENCRYPTION_KEY, SECRET_KEY, SENTRY_DSN
    from celery_platform.builders.sentinel import sentinel_client_env

    env = broker_url_env(refs.broker_secret_name, refs.broker_secret_key, refs.broker_tls)
    if refs.broker_sentinel is not None:
        env += sentinel_client_env(refs.broker_sentinel)
    env += [secret_env(key, refs.secret_name, key) for key in (SECRET_KEY, FIELD_ENCRYPTION_KEY, DATABASE_URL)]
    if SENTRY_DSN in refs.secret_keys:
        env.append(secret_env(SENTRY_DSN, refs.secret_name, SENTRY_DSN))
    env += [
        # Redis redelivers an unacked task after the visibility timeout: it must outlast the longest task.
        {"name": "CELERY_VISIBILITY_TIMEOUT_SECONDS", "value": str(visibility_timeout_seconds(longest_task_seconds))},
        {"name": "CELERY_TASK_ACKS_LATE", "value": "true"},
        {"name": "CELERY_WORKER_PREFETCH_MULTIPLIER", "value": "1"},
        # Unbuffered, so that the last lines before a crash reach the container log.
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    return env


def visibility_timeout_seconds(longest_task_seconds: int) -> int:
    """Return the broker visibility timeout: twice the longest task, at least an hour."""
    return max(2 * longest_task_seconds, 3600)


# Read by the hooks module at worker_init: Celery's worker_soft_shutdown_timeout for a requeue pool.
SOFT_SHUTDOWN_ENV = "CELERY_PLATFORM_SOFT_SHUTDOWN_SECONDS"


def shutdown_env(pool: PoolSpec) -> dict[str, str]:
    """Return the env of a pool's shutdown mode: none for ``finish`` (SIGTERM is Celery's warm shutdown).

    ``requeue``: billiard reads ``REMAP_SIGTERM`` at import, so the kubelet's SIGTERM starts the cold
    shutdown, which first waits the soft shutdown timeout the hooks module sets from the second var.
    """
    if pool.shutdown != "requeue":
        return {}
    return {"REMAP_SIGTERM": "SIGQUIT", SOFT_SHUTDOWN_ENV: str(pool.soft_shutdown_seconds)}


def security_context() -> dict[str, Any]:
    """Return the restricted container securityContext, with a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(run_as_user: int) -> dict[str, Any]:
    """Return the restricted pod securityContext (non-root user, group and fsGroup)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "fsGroup": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# A container killed by its liveness or startup probe is wedged: it cannot finish tasks, and a stopped
# process ignores SIGTERM, so it gets this grace instead of the pod's (which covers the longest task).
PROBE_KILL_GRACE_SECONDS = 30


def exec_probe(argv: list[str], period: int, failures: int, timeout: int = 5, kills: bool = False) -> dict[str, Any]:
    """Return an exec probe; timeoutSeconds is at least 5 because exec timeouts are enforced.

    ``kills`` marks a liveness or startup probe, which gets its own terminationGracePeriodSeconds.
    """
    probe: dict[str, Any] = {
        "exec": {"command": argv},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": max(timeout, 5),
        "successThreshold": 1,
    }
    if kills:
        probe["terminationGracePeriodSeconds"] = PROBE_KILL_GRACE_SECONDS
    return probe


# The password comes out of the URL inside the shell and reaches redis-cli through REDISCLI_AUTH, so it
# never shows in a process list; the host and port are the broker's own (its Service, or the settings).
_WAIT_SCRIPT = "; ".join(
    [
        'rest="${CELERY_BROKER_URL#*://}"',
        'user=""',
        'case "$rest" in *@*) creds="${rest%@*}"; user="${creds%%:*}"; export REDISCLI_AUTH="${creds#*:}";; esac',
        'set -- -h "$REDIS_HOST" -p "$REDIS_PORT"',
        'if [ -n "$user" ]; then set -- "$@" --user "$user"; fi',
        'if [ -n "$BROKER_TLS" ]; then set -- "$@" --tls --sni "$REDIS_HOST"; fi',
        'if [ -n "$BROKER_CA_FILE" ]; then set -- "$@" --cacert "$BROKER_CA_FILE"; fi',
        'until redis-cli "$@" ping 2>/dev/null | grep -q PONG; '
        'do echo "waiting for the broker at $REDIS_HOST:$REDIS_PORT"; sleep 2; done',
    ]
)


def wait_for_broker(redis_image: str, refs: Refs, resources: PodResources) -> dict[str, Any]:
    """Return the init container that waits until the broker answers PONG (over TLS too), instead of crash-looping;
    with Sentinel, until the Sentinels name a master and it answers as one."""
    if refs.broker_sentinel is not None:
        from celery_platform.builders.sentinel import wait_for_sentinel_broker

        return wait_for_sentinel_broker(
            redis_image=redis_image,
            client=refs.broker_sentinel,
            url_secret=refs.broker_secret_name,
            url_key=refs.broker_secret_key,
            resources=resources,
        )
    tls = refs.broker_tls
    container: dict[str, Any] = {
        "name": "wait-for-broker",
        "image": redis_image,
        "command": ["sh", "-c", _WAIT_SCRIPT],
        "env": [
            secret_env("CELERY_BROKER_URL", refs.broker_secret_name, refs.broker_secret_key),
            {"name": "REDIS_HOST", "value": refs.broker_host},
            {"name": "REDIS_PORT", "value": str(refs.broker_port)},
            {"name": "BROKER_TLS", "value": "1" if tls is not None else ""},
            {"name": "BROKER_CA_FILE", "value": tls.ca_file() if tls is not None else ""},
        ],
        "resources": resources.to_k8s(),
        "securityContext": security_context(),
    }
    if tls is not None and tls.has_ca():
        container["volumeMounts"] = [{"name": "broker-ca", "mountPath": BROKER_CA_MOUNT, "readOnly": True}]
    return container


def build_pod_spec(
    *,
    container: Mapping[str, Any],
    init_containers: Sequence[Mapping[str, Any]],
    volumes: Sequence[Mapping[str, Any]],
    run_as_user: int,
    grace_seconds: int,
    spread_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a restricted pod spec around one main container; serves workers, beat and Redis."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(run_as_user),
        "terminationGracePeriodSeconds": grace_seconds,
        "initContainers": list(init_containers),
        "containers": [dict(container)],
        "volumes": list(volumes),
    }
    if spread_labels:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                # ScheduleAnyway: spreading is a preference; a one-node dev cluster must still schedule.
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(spread_labels)},
            }
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ]
    return spec


def celery_volumes(refs: Refs) -> list[dict[str, Any]]:
    """Return the writable /tmp, the hooks ConfigMap and (with TLS and a CA) the broker CA volumes of a Celery pod."""
    volumes = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "hooks", "configMap": {"name": refs.hooks_config_map, "defaultMode": 0o444}},
    ]
    if refs.broker_tls is not None and refs.broker_tls.has_ca():
        volumes.append(ca_volume(refs.broker_tls))
    return volumes


CELERY_MOUNTS: list[dict[str, Any]] = [
    {"name": "tmp", "mountPath": TMP_MOUNT},
    {"name": "hooks", "mountPath": HOOKS_MOUNT_PATH, "readOnly": True},
]


def celery_mounts(refs: Refs) -> list[dict[str, Any]]:
    """Return the Celery container's mounts of the platform's own volumes."""
    if refs.broker_tls is not None and refs.broker_tls.has_ca():
        return [*CELERY_MOUNTS, {"name": "broker-ca", "mountPath": BROKER_CA_MOUNT, "readOnly": True}]
    return list(CELERY_MOUNTS)


def celery_container(
    *,
    name: str,
    image: str,
    args: list[str],
    hook_env: Mapping[str, str],
    resources: PodResources,
    refs: Refs,
    longest_task_seconds: int,
    commands: probes.ProbeCommands,
    task_routes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a Celery container (worker or beat): exec-form celery as PID 1, secrets by reference, file probes."""
    env = app_env(refs, longest_task_seconds) + [{"name": k, "value": v} for k, v in hook_env.items()]
    if task_routes:
        # The hooks module puts them in front of the app's own task_routes, in the worker and in beat.
        env.append({"name": probes.TASK_ROUTES_ENV, "value": task_routes_json(task_routes)})
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["celery"],
        "args": args,
        "env": env,
        "resources": resources.to_k8s(),
        "securityContext": security_context(),
        "volumeMounts": celery_mounts(refs),
        # Startup waits for the ready file (the init container already waited for the broker). Every
        # second, for the same 300 s budget: the kubelet runs readiness at once when startup passes
        # (prober_manager.go, "Trigger an immediate run of the readinessProbe"), so Ready comes
        # within about a second of the ready file, and startup probes stop once the container is up.
        "startupProbe": exec_probe(commands.startup, period=1, failures=300, kills=True),
        "livenessProbe": exec_probe(commands.liveness, period=10, failures=3, kills=True),
        "readinessProbe": exec_probe(commands.readiness, period=10, failures=3),
    }


def worker_container(
    *,
    image: str,
    app: str,
    pool: PoolSpec,
    refs: Refs,
    longest_task_seconds: int,
    heartbeat_max_age_seconds: int,
    python_path: Sequence[str] = (),
    memory_volume_bytes: int = 0,
    task_routes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a pool's worker container; liveness is the heartbeat of the worker's event loop."""
    return celery_container(
        name="worker",
        image=image,
        args=worker_args(app, pool, memory_volume_bytes),
        hook_env={**probes.worker_env(STATE_DIR, image_pythonpath=python_path), **shutdown_env(pool)},
        resources=pool.resources,
        refs=refs,
        longest_task_seconds=longest_task_seconds,
        commands=probes.worker_probe_commands(STATE_DIR, heartbeat_max_age_seconds),
        task_routes=task_routes,
    )


def beat_container(
    *,
    image: str,
    app: str,
    beat: BeatSpec,
    refs: Refs,
    longest_task_seconds: int,
    heartbeat_max_age_seconds: int,
    python_path: Sequence[str] = (),
    task_routes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the beat container: schedule in the writable state dir, heartbeat from its scheduling loop."""
    # Beat may sleep max_interval between heartbeats: the max age must cover two of those.
    max_age = max(heartbeat_max_age_seconds, 2 * beat.max_interval_seconds + 2)
    return celery_container(
        name="beat",
        image=image,
        args=[*probes.beat_args(STATE_DIR, beat.max_interval_seconds), "--loglevel", beat.log_level.upper()],
        hook_env=probes.beat_env(STATE_DIR, app, image_pythonpath=python_path),
        resources=beat.resources,
        refs=refs,
        longest_task_seconds=longest_task_seconds,
        commands=probes.beat_probe_commands(STATE_DIR, beat.max_interval_seconds, max_age),
        task_routes=task_routes,
    )


def task_routes_json(task_routes: Mapping[str, str]) -> str:
    """The routes as the hooks read them: compact JSON, keys sorted, so that the same table renders the same bytes."""
    return json.dumps(dict(sorted(task_routes.items())), separators=(",", ":"))
