"""Pure builders of what reaches a broker: its URL env, CA volume, KEDA's credentials and our URL Secret's data."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

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
    ``CELERY_BROKER_URL`` comes from the Secret by reference (``valueFrom``) for our Redis, a plain
    external broker and a TLS one whose URL we keep (with its checks, ``with_tls_checks``): a var that
    changed its kind of source from one broker to another would make a switch fail at the API server,
    which merges an apply into the live env by name and keeps the ``valueFrom`` that the object's creator
    still owns beside the new ``value`` ("may not be specified when `value` is not empty"). Only a URL in
    a Secret of the user's needs the kubelet to append the checks: ``$(CELERY_PLATFORM_BROKER_URL)?...``,
    so the secret never becomes a literal value.
    """
    from_secret: dict[str, Any] = {"secretKeyRef": {"name": secret_name, "key": key}}
    # For apps that configure broker_use_ssl themselves instead of reading the URL's query.
    ca = [{"name": "CELERY_BROKER_CA_FILE", "value": tls.ca_file()}] if tls is not None and tls.has_ca() else []
    if tls is None or tls.url_has_checks:
        return [{"name": URL_KEY, "valueFrom": from_secret}, *ca]
    return [
        {"name": "CELERY_PLATFORM_BROKER_URL", "valueFrom": from_secret},
        {"name": URL_KEY, "value": f"$(CELERY_PLATFORM_BROKER_URL)?{tls_query(tls)}"},
        *ca,
    ]


def tls_query(tls: BrokerTLS) -> str:
    """Return kombu's certificate checks as a URL query: required, against the mounted CA when there is one."""
    return "ssl_cert_reqs=required" + (f"&ssl_ca_certs={tls.ca_file()}" if tls.has_ca() else "")


def with_tls_checks(url: str, tls: BrokerTLS | None) -> str:
    """Return ``url`` with the certificate checks in its query (replacing any ``ssl_cert_reqs``/``ssl_ca_certs``)."""
    if tls is None:
        return url
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in TLS_QUERY_KEYS]
    query = "&".join([*(f"{k}={v}" for k, v in kept), tls_query(tls)])
    return urlunsplit(parts._replace(query=query))


TLS_QUERY_KEYS = ("ssl_cert_reqs", "ssl_ca_certs")


def broker_auth(
    password: tuple[Any, str] | None,
    tls: BrokerTLS | None,
    username: tuple[Any, str] | None = None,
    sentinel_password: tuple[Any, str] | None = None,
) -> BrokerAuth:
    """The credentials' Secret keys and the TLS settings, as KEDA's TriggerAuthentication reads them."""
    return BrokerAuth(
        password=password,
        username=username,
        sentinel_password=sentinel_password,
        tls=tls is not None,
        ca=tls.ca_secret if tls is not None else None,
        ca_config_map=tls.ca_config_map if tls is not None else None,
    )


def url_secret_data(url: str, tls: BrokerTLS | None = None) -> dict[str, str]:
    """Our Secret of an external broker: the URL (over TLS, with its certificate checks), and its password
    and user name for KEDA (empty if none)."""
    parts = urlsplit(url)
    return {
        URL_KEY: with_tls_checks(url, tls),
        PASSWORD_KEY: unquote(parts.password or ""),
        USERNAME_KEY: unquote(parts.username or ""),
    }
