"""The broker interface that CeleryWorkers needs, and ExternalBroker: a Redis that the platform does not run.

``RedisBroker`` and ``ExternalBroker`` both satisfy ``Broker`` (host, port, the URL's Secret and
key, TLS), so the workers never branch on which one they got. An external broker is a managed
Redis (ElastiCache, Memorystore, Azure Cache) or an operator's, often over TLS (``rediss://``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.build.labels import PART_OF, standard_labels
from celery_platform.config.autoscaling import BrokerAuth, autoscaling_problems
from celery_platform.config.podsettings import BROKER_CA_MOUNT, KeyRef, ip_cidr
from celery_platform.config.validation import (
    Problem,
    args_schema,
    check_broker_url,
    check_cidr,
    check_count,
    check_port,
    raise_if_any,
    shown,
    untyped,
    validated_by_parent,
)

if TYPE_CHECKING:
    from celery_platform.config.specs import PoolSpec

DEFAULT_PORT = 6379
CA_FILENAME = "ca.crt"
URL_KEY = "CELERY_BROKER_URL"
# Kept next to the URL in our Secret of an external broker, for KEDA (which takes no URL).
PASSWORD_KEY = "REDIS_PASSWORD"
USERNAME_KEY = "REDIS_USERNAME"


@args_schema
@dataclass(frozen=True, kw_only=True)
class BrokerTLS:
    """TLS to the broker: ``rediss://``, with the CA from a Secret or ConfigMap unless it is a public one."""

    ca_secret: KeyRef | None = None
    """The CA certificate (PEM) in an existing Secret. Default: unset."""
    ca_config_map: KeyRef | None = None
    """The CA certificate (PEM) in an existing ConfigMap. Default: unset (with no Secret either: the image's CAs)."""

    def has_ca(self) -> bool:
        """Return whether a CA is mounted (otherwise the image's trusted CAs verify the broker)."""
        return self.ca_secret is not None or self.ca_config_map is not None

    def ca_file(self) -> str:
        """Return the CA file's path in the containers, or ``""`` without a CA."""
        return f"{BROKER_CA_MOUNT}/{CA_FILENAME}" if self.has_ca() else ""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems: at most one CA source, valid references."""
        problems = []
        if self.ca_secret is not None and self.ca_config_map is not None:
            problems.append(Problem(field, "has two CA sources", "caSecret and caConfigMap", "one of them"))
        if self.ca_secret is not None:
            problems += self.ca_secret.validate(f"{field}.caSecret")
        if self.ca_config_map is not None:
            problems += self.ca_config_map.validate(f"{field}.caConfigMap")
        return problems


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


@args_schema
@dataclass(frozen=True, kw_only=True)
class ExternalBrokerSpec:
    """A Redis the platform does not run; its URL from an existing Secret or from a secret value."""

    url_secret: KeyRef | None = None
    """The existing Secret and key that hold the URL. Default: unset (the URL is given as a secret value)."""
    host: str = ""
    """The broker's host; read from the URL when the URL is given as a value. Default: ``""``."""
    port: int | None = None
    """The broker's port. Default: the URL's, else ``6379``."""
    tls: bool | None = None
    """Connect with TLS (``rediss://``). Default: the URL's scheme, else ``False``."""
    ca_secret: KeyRef | None = None
    """With TLS: the CA certificate in an existing Secret. Default: the image's trusted CAs."""
    ca_config_map: KeyRef | None = None
    """With TLS: the CA certificate in an existing ConfigMap. Default: the image's trusted CAs."""
    cidr: str = ""
    """Addresses the egress NetworkPolicy admits on the broker port (NetworkPolicy cannot match names).
    Default: ``HOST/32`` when the host is an IP address; required otherwise."""
    database: int | None = None
    """The Redis database index in the URL's path. Default: the URL's, else ``0``."""
    password_secret: KeyRef | None = None
    """With ``urlSecret``: the existing Secret and key that hold the broker password, for a pool that
    autoscales (KEDA takes no URL). Default: unset; with a URL value, the password is read from it."""
    username_secret: KeyRef | None = None
    """With ``urlSecret``: the Secret and key of an ACL user name, for KEDA. Default: the default user."""

    def resolve(self, url: str | None) -> tuple[str, int, bool]:
        """Return (host, port, tls), from the fields, else from a URL given as a plain value."""
        parts = urlsplit(url) if url else None
        try:
            url_port = parts.port if parts else None
        except ValueError:
            url_port = None
        host = self.host or (parts.hostname or "" if parts else "")
        port = self.port or url_port or DEFAULT_PORT
        tls = self.tls if self.tls is not None else bool(parts and parts.scheme == "rediss")
        return host, port, tls

    def resolve_database(self, url: str | None) -> int:
        """Return the database index: the field, else the URL's path, else 0."""
        if self.database is not None:
            return self.database
        path = urlsplit(url).path.strip("/") if url else ""
        return int(path) if path.isdigit() else 0

    def autoscaling_problems(self, field: str, pools: Sequence[PoolSpec]) -> list[Problem]:
        """KEDA reads the password from a Secret key: ours keeps one when the URL is a value; a URL in an
        existing Secret needs ``passwordSecret`` as soon as a pool autoscales."""
        if self.url_secret is None or self.password_secret is not None:
            return []
        return autoscaling_problems(pools, BrokerAuth(password=None), field)

    def broker_tls(self, url: str | None) -> BrokerTLS | None:
        """Return the TLS settings the workers get."""
        if not self.resolve(url)[2]:
            return None
        return BrokerTLS(ca_secret=self.ca_secret, ca_config_map=self.ca_config_map)

    def egress_cidr(self, url: str | None) -> str:
        """Return the CIDR the egress policy admits."""
        return self.cidr or ip_cidr(self.resolve(url)[0]) or ""

    def validate(self, field: str, url: Any = None, url_given: bool = False) -> list[Problem]:
        """Return every problem; ``url`` is the URL value when known as a plain string."""
        problems: list[Problem] = []
        plain = url if isinstance(url, str) else None
        if self.url_secret is not None and url_given:
            problems.append(Problem(field, "has two URL sources", "urlSecret and a URL value", "one of them"))
        if self.url_secret is None and not url_given:
            problems.append(
                Problem(f"{field}.urlSecret", "no broker URL", "nothing", "urlSecret, or the brokerUrl secret value")
            )
        if self.url_secret is not None:
            problems += self.url_secret.validate(f"{field}.urlSecret")
        if plain is not None:
            problems += check_broker_url("brokerUrl", plain)
            if problems:
                return problems
            parts = urlsplit(plain)
            if self.host and self.host != parts.hostname:
                problems.append(
                    Problem(f"{field}.host", "differs from the URL's host", shown(self.host), "the URL's host")
                )
            if self.port and parts.port and self.port != parts.port:
                problems.append(
                    Problem(f"{field}.port", "differs from the URL's port", shown(self.port), str(parts.port))
                )
            if self.tls is not None and self.tls != (parts.scheme == "rediss"):
                problems.append(
                    Problem(f"{field}.tls", "disagrees with the URL's scheme", shown(self.tls), f"{parts.scheme}://")
                )
            path = parts.path.strip("/")
            if self.database is not None and path.isdigit() and int(path) != self.database:
                problems.append(
                    Problem(f"{field}.database", "differs from the URL's database", shown(self.database), path)
                )
        if self.database is not None:
            problems += check_count(f"{field}.database", self.database, 0, 65535)
        for name, ref in (("passwordSecret", self.password_secret), ("usernameSecret", self.username_secret)):
            if ref is None:
                continue
            problems += ref.validate(f"{field}.{name}")
            if self.url_secret is None:
                problems.append(
                    Problem(
                        f"{field}.{name}", "is only read with urlSecret", "a Secret key", "unset: the URL's is used"
                    )
                )
        host, port, tls = self.resolve(plain)
        if not host:
            problems.append(
                Problem(f"{field}.host", "is required when the URL is in a Secret", "''", "the broker's host")
            )
        problems += check_port(f"{field}.port", port)
        if self.cidr:
            problems += check_cidr(f"{field}.cidr", self.cidr)
        elif host and ip_cidr(host) is None:
            problems.append(
                Problem(
                    f"{field}.cidr",
                    "is required for a broker named by DNS (NetworkPolicy admits addresses, not names)",
                    "''",
                    "the broker's subnet, e.g. '10.20.0.0/16'",
                )
            )
        has_ca = self.ca_secret is not None or self.ca_config_map is not None
        if has_ca and not tls:
            problems.append(
                Problem(f"{field}.caSecret", "a CA needs TLS", "tls: false", "tls: true or a rediss:// URL")
            )
        problems += BrokerTLS(ca_secret=self.ca_secret, ca_config_map=self.ca_config_map).validate(field)
        return problems


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
        if args.spec.url_secret is not None:
            self._secret_name: Any = args.spec.url_secret.name
            self._secret_key = args.spec.url_secret.key
            password, username = args.spec.password_secret, args.spec.username_secret
            self._auth = broker_auth(
                (password.name, password.key) if password is not None else None,
                self._tls,
                (username.name, username.key) if username is not None else None,
            )
        else:
            assert args.url is not None
            url: pulumi.Output[str] = pulumi.Output.secret(args.url)
            secret = k8s.core.v1.Secret(
                f"{resource_name}-url",
                metadata={"namespace": args.namespace, "labels": labels},
                type="Opaque",
                # Secret because url is: apply keeps the secrecy of its input.
                string_data=url.apply(url_secret_data),
                opts=child,
            )
            self._secret_name, self._secret_key = secret.metadata.name, URL_KEY
            self._auth = broker_auth(
                (secret.metadata.name, PASSWORD_KEY), self._tls, (secret.metadata.name, USERNAME_KEY)
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
                            "ports": [{"protocol": "TCP", "port": port}],
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


def url_secret_data(url: str) -> dict[str, str]:
    """Our Secret of an external broker: the URL, and its password and user name for KEDA (empty if none)."""
    parts = urlsplit(url)
    return {
        URL_KEY: url,
        PASSWORD_KEY: unquote(parts.password or ""),
        USERNAME_KEY: unquote(parts.username or ""),
    }


BROKER_TYPES = ("redis", "external")


@args_schema
@dataclass(frozen=True, kw_only=True)
class BrokerChoice:
    """Which broker the stack uses: our Redis (the ``redis`` key) or an external one."""

    type: str = "redis"
    """``redis``: a Redis of ours; ``external``: the Redis that ``external`` describes. Default: ``"redis"``."""
    external: ExternalBrokerSpec | None = None
    """The external broker, with ``type: external``. Default: unset."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the choice itself (the URL is checked with the brokerUrl key)."""
        if self.type not in BROKER_TYPES:
            return [Problem(f"{field}.type", "unknown broker type", shown(self.type), " or ".join(BROKER_TYPES))]
        if self.type == "external" and self.external is None:
            return [Problem(f"{field}.external", "is required with type external", "nothing", "the broker's settings")]
        if self.type == "redis" and self.external is not None:
            return [Problem(f"{field}.external", "is set, but type is redis", "a mapping", "type: external")]
        return []
