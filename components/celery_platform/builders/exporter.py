"""Pure builders of the metrics exporter: its pod, probes, admission plan and ServiceMonitor."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

from celery_platform.builders.admission import PodPlan
from celery_platform.builders.broker import broker_url_env, ca_volume
from celery_platform.builders.sentinel import sentinel_client_env
from celery_platform.builders.workloads import build_pod_spec, security_context
from celery_platform.config.broker import BrokerTLS, SentinelClient
from celery_platform.config.monitoring import MonitoringSpec
from celery_platform.config.podsettings import PodSettings, apply_to_pod
from celery_platform.config.volumes import BROKER_CA_MOUNT, TMP_MOUNT

EXPORTER_MODULE = "celery_platform_exporter"
EXPORTER_FILENAME = f"{EXPORTER_MODULE}.py"
EXPORTER_MOUNT_PATH = "/etc/celery-platform/exporter"
PORT_NAME = "metrics"


def exporter_source() -> str:
    """Return the text of celery_platform_exporter.py, for the ConfigMap; works from an installed package."""
    return files("celery_platform").joinpath("exporter").joinpath(EXPORTER_FILENAME).read_text(encoding="utf-8")


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
        "successThreshold": 1,
    }


def exporter_container(
    *,
    image: str,
    spec: MonitoringSpec,
    queues: Sequence[str],
    broker_secret_name: Any,
    broker_secret_key: str = "CELERY_BROKER_URL",
    visibility_timeout_seconds: int | None = None,
    tls: BrokerTLS | None = None,
    sentinel: SentinelClient | None = None,
) -> dict[str, Any]:
    """Return the exporter container: python -m the shipped module, the broker URL by reference.

    The URL reaches it exactly as it reaches the workers (``broker_url_env``): over TLS with
    ``ssl_cert_reqs=required`` and the mounted CA, which the event receiver, the queue-depth reads and
    the sweep all use, since each connects through the same Celery app. With
    ``visibility_timeout_seconds`` (the workers'), it also returns hard-killed workers' tasks to their
    queues after that timeout, as a running worker would.
    """
    sweep = (
        [{"name": "CELERY_VISIBILITY_TIMEOUT_SECONDS", "value": str(visibility_timeout_seconds)}]
        if visibility_timeout_seconds is not None
        else []
    )
    return {
        "name": "exporter",
        "image": spec.image or image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", EXPORTER_MODULE],
        "env": [
            *broker_url_env(broker_secret_name, broker_secret_key, tls),
            # With Sentinel, every connection (events, depths, the sweep) asks the Sentinels for the master.
            *(sentinel_client_env(sentinel) if sentinel is not None else []),
            {"name": "CELERY_PLATFORM_EXPORTER_QUEUES", "value": ",".join(sorted(set(queues)))},
            {"name": "CELERY_PLATFORM_EXPORTER_PORT", "value": str(spec.port)},
            {"name": "PYTHONPATH", "value": EXPORTER_MOUNT_PATH},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *sweep,
        ],
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "resources": spec.resources.to_k8s(),
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": TMP_MOUNT},
            {"name": "exporter", "mountPath": EXPORTER_MOUNT_PATH, "readOnly": True},
            *([{"name": "broker-ca", "mountPath": BROKER_CA_MOUNT, "readOnly": True}] if tls and tls.has_ca() else []),
        ],
        # Ready while connected to the broker; live while its event loop turns (a broker outage is
        # ridden out by reconnecting, not by a restart).
        "startupProbe": _http_probe("/livez", period=2, failures=30),
        "livenessProbe": _http_probe("/livez", period=10, failures=3),
        "readinessProbe": _http_probe("/readyz", period=10, failures=3),
    }


def exporter_pod_spec(
    *,
    image: str,
    spec: MonitoringSpec,
    queues: Sequence[str],
    broker_secret_name: Any,
    config_map: Any,
    run_as_user: int,
    broker_secret_key: str = "CELERY_BROKER_URL",
    visibility_timeout_seconds: int | None = None,
    tls: BrokerTLS | None = None,
    sentinel: SentinelClient | None = None,
    pod: PodSettings | None = None,
    service_account_default: str = "celery",
    spread_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the exporter's restricted pod spec (the same function feeds admission and the Deployment).

    ``pod`` (the platform's pod settings merged with ``monitoring.exporter.pod``) gives it the identity,
    pull secrets and placement of every Celery pod. The extra env, envFrom, volumes and pythonPath are
    the app's, for the app's own code, so they are left out: the exporter runs only the shipped module.
    """
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        {"name": "exporter", "configMap": {"name": config_map, "defaultMode": 0o444}},
    ]
    if tls is not None and tls.has_ca():
        volumes.append(ca_volume(tls))
    spec_ = build_pod_spec(
        container=exporter_container(
            image=image,
            spec=spec,
            queues=queues,
            broker_secret_name=broker_secret_name,
            broker_secret_key=broker_secret_key,
            visibility_timeout_seconds=visibility_timeout_seconds,
            tls=tls,
            sentinel=sentinel,
        ),
        init_containers=[],
        volumes=volumes,
        run_as_user=run_as_user,
        grace_seconds=30,
    )
    settings = exporter_pod(pod)
    # One pod, as beat: nothing to spread unless the settings ask for it explicitly.
    spread = spread_labels if settings.topology_spread else None
    return apply_to_pod(spec_, settings, selector=spread, service_account_default=service_account_default)


def exporter_pod(pod: PodSettings | None) -> PodSettings:
    """Return the pod settings that apply to the exporter: all but the app container's env, volumes and path."""
    settings = pod or PodSettings()
    return dataclasses.replace(settings, env=None, env_from=None, volumes=None, volume_mounts=None, python_path=None)


def exporter_plan(
    *,
    image: str,
    spec: MonitoringSpec,
    queues: Sequence[str],
    run_as_user: int,
    tls: BrokerTLS | None = None,
    sentinel: SentinelClient | None = None,
    pod: PodSettings | None = None,
) -> PodPlan:
    """Return the exporter pod as admission sees it: one replica, Recreate, so no surge."""
    pod_spec = exporter_pod_spec(
        image=image,
        spec=spec,
        queues=queues,
        broker_secret_name="broker",
        config_map="exporter",
        run_as_user=run_as_user,
        tls=tls,
        sentinel=sentinel,
        pod=pod,
    )
    return PodPlan(owner="monitoring", replicas=1, surge=0, pod_spec=pod_spec)


def service_monitor_spec(selector: Mapping[str, str], spec: MonitoringSpec) -> dict[str, Any]:
    """Return the ServiceMonitor spec that scrapes the exporter Service's metrics port."""
    return {
        "selector": {"matchLabels": dict(selector)},
        "endpoints": [
            {
                "port": PORT_NAME,
                "path": "/metrics",
                "interval": f"{spec.scrape_interval_seconds}s",
                # A scrape reads every queue's depth from the broker: give it the whole interval.
                "scrapeTimeout": f"{max(spec.scrape_interval_seconds - 5, 5)}s",
            }
        ],
    }
