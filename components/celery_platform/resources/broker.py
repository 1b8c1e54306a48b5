"""The broker interface that CeleryWorkers needs, and ExternalBroker: a Redis that the platform does not run.

``RedisBroker`` and ``ExternalBroker`` both satisfy ``Broker`` (host, port, the URL's Secret and
key, TLS), so the workers never branch on which one they got. An external broker is a managed
Redis (ElastiCache, Memorystore, Azure Cache) or an operator's, often over TLS (``rediss://``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.builders.broker import broker_auth, url_secret_data
from celery_platform.builders.labels import PART_OF, standard_labels
from celery_platform.config.autoscaling import BrokerAuth
from celery_platform.config.broker import (
    PASSWORD_KEY,
    URL_KEY,
    USERNAME_KEY,
    BrokerTLS,
    ExternalBrokerSpec,
    SentinelClient,
)
from celery_platform.config.problems import raise_if_any, untyped, validated_by_parent

if TYPE_CHECKING:
    pass


class Broker(Protocol):
    """What CeleryWorkers needs from a broker: where it is, where its URL is kept, and how to reach it."""

    @property
    def host(self) -> Any:
        """The broker's host name (str or Output)."""

    @property
    def port(self) -> int:
        """The broker's TCP port."""

    @property
    def url_secret_name(self) -> Any:
        """The Secret that holds the broker URL (str or Output)."""

    @property
    def url_secret_key(self) -> str:
        """The key of the URL in that Secret."""

    @property
    def tls(self) -> BrokerTLS | None:
        """TLS settings, or None for plain ``redis://``."""

    @property
    def database(self) -> int:
        """The Redis database index that Celery uses (the URL's path)."""

    @property
    def auth(self) -> BrokerAuth:
        """Where an autoscaler finds the broker's credentials: Secret keys, never values."""

    @property
    def sentinel(self) -> SentinelClient | None:
        """With Sentinel: the master's name, the Sentinels and their password; None for a plain Redis."""


@dataclass(frozen=True, kw_only=True)
class ExternalBrokerArgs:
    """Arguments of ExternalBroker."""

    namespace: pulumi.Input[str]
    """Namespace of the URL Secret and the egress NetworkPolicy. Required."""
    spec: ExternalBrokerSpec
    """Where the broker is and how to reach it. Required."""
    url: pulumi.Input[str] | None = None
    """The broker URL as a secret value; stored in a Secret of ours. Default: unset (``spec.url_secret``)."""
    object_name: str | None = None
    """Name of the Kubernetes objects and their instance label; a contract with existing objects, so a
    component renamed later keeps it. Default: the component's name."""


class ExternalBroker(pulumi.ComponentResource):
    """A broker the platform does not run: its URL Secret (unless one exists) and egress to it."""

    def __init__(
        self, resource_name: str, args: ExternalBrokerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        plain = args.url if isinstance(args.url, str) else None
        if not validated_by_parent(opts):
            problems = args.spec.validate("broker", args.url, url_given=args.url is not None)
            raise_if_any(f"ExternalBroker {resource_name!r}", problems)
        super().__init__("celery-platform:index:ExternalBroker", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_name = args.object_name or resource_name
        labels = standard_labels("redis", object_name, "broker")
        host, port, _ = args.spec.resolve(plain)
        self._host, self._port, self._tls = host, port, args.spec.broker_tls(plain)
        self._database = args.spec.resolve_database(plain)
        external_sentinel = args.spec.sentinel
        sentinel_password = external_sentinel.password_secret if external_sentinel is not None else None
        sentinel_secret = (sentinel_password.name, sentinel_password.key) if sentinel_password is not None else None
        self._sentinel = (
            SentinelClient(
                master_name=external_sentinel.master_name,
                addresses=args.spec.sentinel_addresses(plain),
                password=sentinel_secret,
            )
            if external_sentinel is not None
            else None
        )
        if args.spec.url_secret is not None:
            self._secret_name: Any = args.spec.url_secret.name
            self._secret_key = args.spec.url_secret.key
            password, username = args.spec.password_secret, args.spec.username_secret
            self._auth = broker_auth(
                (password.name, password.key) if password is not None else None,
                self._tls,
                (username.name, username.key) if username is not None else None,
                sentinel_secret,
            )
        else:
            assert args.url is not None
            url: pulumi.Output[str] = pulumi.Output.secret(args.url)
            secret = k8s.core.v1.Secret(
                f"{resource_name}-url",
                metadata={"namespace": args.namespace, "labels": labels},
                type="Opaque",
                # Secret because url is: apply keeps the secrecy of its input.
                string_data=url.apply(lambda value: url_secret_data(value, self._tls)),
                opts=child,
            )
            self._secret_name, self._secret_key = secret.metadata.name, URL_KEY
            self._auth = broker_auth(
                (secret.metadata.name, PASSWORD_KEY), self._tls, (secret.metadata.name, USERNAME_KEY), sentinel_secret
            )
        # The namespace denies egress by default; the platform's pods may reach this broker, and only on its port.
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-egress",
            metadata={"name": f"{object_name}-egress", "namespace": args.namespace, "labels": labels},
            spec=untyped(
                {
                    "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": args.spec.egress_cidr(plain)}}],
                            # With Sentinel: the Sentinels' ports and the data nodes' that they name.
                            "ports": [{"protocol": "TCP", "port": p} for p in args.spec.egress_ports(plain)],
                        }
                    ],
                }
            ),
            opts=child,
        )
        self.register_outputs({"host": host, "port": port})

    @property
    def host(self) -> str:
        """The broker's host name."""
        return self._host

    @property
    def port(self) -> int:
        """The broker's port."""
        return self._port

    @property
    def url_secret_name(self) -> Any:
        """The Secret that holds the URL: the existing one, or ours."""
        return self._secret_name

    @property
    def url_secret_key(self) -> str:
        """The key of the URL in that Secret."""
        return self._secret_key

    @property
    def tls(self) -> BrokerTLS | None:
        """TLS settings, or None for ``redis://``."""
        return self._tls

    @property
    def database(self) -> int:
        """The database index: the spec's, else the URL's, else 0."""
        return self._database

    @property
    def auth(self) -> BrokerAuth:
        """The password (and user) as Secret keys: the spec's with urlSecret, else our Secret's."""
        return self._auth

    @property
    def sentinel(self) -> SentinelClient | None:
        """With ``sentinel``: the master's name, the Sentinels and their password; else None (the URL's host)."""
        return self._sentinel
