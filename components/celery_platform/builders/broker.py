"""Pure builders of what reaches a broker: its URL env, CA volume, KEDA's credentials and our URL Secret's data."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from celery_platform.config.autoscaling import BrokerAuth
from celery_platform.config.broker import (
    CA_FILENAME,
    PASSWORD_KEY,
    URL_KEY,
    USERNAME_KEY,
    BrokerTLS,
)


def ca_volume(tls: BrokerTLS) -> dict[str, Any]:
    """Return the pod volume that puts the broker's CA at ``ca_file()``."""
    if tls.ca_secret is not None:
        items = [{"key": tls.ca_secret.key, "path": CA_FILENAME}]
        return {"name": "broker-ca", "secret": {"secretName": tls.ca_secret.name, "items": items, "defaultMode": 0o444}}
    assert tls.ca_config_map is not None
    items = [{"key": tls.ca_config_map.key, "path": CA_FILENAME}]
    return {"name": "broker-ca", "configMap": {"name": tls.ca_config_map.name, "items": items, "defaultMode": 0o444}}


def broker_url_env(secret_name: Any, key: str, tls: BrokerTLS | None) -> list[dict[str, Any]]:
    """Return the env that gives Celery its broker URL; over TLS, certificate checks are always required.

    kombu reads ``ssl_*`` options from the URL's query and, for a bare ``rediss://``, verifies nothing.
    The kubelet expands ``$(CELERY_PLATFORM_BROKER_URL)``, so the secret never becomes a literal value.
    """
    from_secret: dict[str, Any] = {"secretKeyRef": {"name": secret_name, "key": key}}
    if tls is None:
        return [{"name": URL_KEY, "valueFrom": from_secret}]
    query = "ssl_cert_reqs=required" + (f"&ssl_ca_certs={tls.ca_file()}" if tls.has_ca() else "")
    env: list[dict[str, Any]] = [
        {"name": "CELERY_PLATFORM_BROKER_URL", "valueFrom": from_secret},
        {"name": URL_KEY, "value": f"$(CELERY_PLATFORM_BROKER_URL)?{query}"},
    ]
    if tls.has_ca():
        # For apps that configure broker_use_ssl themselves instead of reading the URL's query.
        env.append({"name": "CELERY_BROKER_CA_FILE", "value": tls.ca_file()})
    return env


def broker_auth(
    password: tuple[Any, str] | None, tls: BrokerTLS | None, username: tuple[Any, str] | None = None
) -> BrokerAuth:
    """The credentials' Secret keys and the TLS settings, as KEDA's TriggerAuthentication reads them."""
    return BrokerAuth(
        password=password,
        username=username,
        tls=tls is not None,
        ca=tls.ca_secret if tls is not None else None,
        ca_config_map=tls.ca_config_map if tls is not None else None,
    )


def url_secret_data(url: str) -> dict[str, str]:
    """Our Secret of an external broker: the URL, and its password and user name for KEDA (empty if none)."""
    parts = urlsplit(url)
    return {
        URL_KEY: url,
        PASSWORD_KEY: unquote(parts.password or ""),
        USERNAME_KEY: unquote(parts.username or ""),
    }
