"""An external broker as a user describes it, and which broker a platform uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celery_platform.config.addresses import bare_host, check_cidr, check_host, check_port, host_port, ip_cidr
from celery_platform.config.autoscaling import BrokerAuth, autoscaling_problems
from celery_platform.config.env import KeyRef
from celery_platform.config.problems import Problem, redacted, shown
from celery_platform.config.schema import args_schema
from celery_platform.config.secret_values import check_broker_url
from celery_platform.config.sentinel import SENTINEL_PORT, SentinelSpec, check_master_name
from celery_platform.config.validation import check_count
from celery_platform.config.volumes import BROKER_CA_MOUNT

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
    url_has_checks: bool = False
    """The URL Secret's URL carries the certificate checks already (our Secret of a URL given as a value);
    otherwise the kubelet appends them to the URL it reads. Default: ``False``."""

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


@args_schema
@dataclass(frozen=True, kw_only=True)
class ExternalSentinel:
    """Sentinels in front of an external Redis: the URL is kombu's ``sentinel://`` list of them."""

    master_name: str
    """The name the Sentinels know the primary by. Required."""
    sentinels: tuple[str, ...] = ()
    """Every Sentinel as ``host:port`` (a hostname or an IPv4 address), for wait-for-broker and KEDA.
    Default: read from the URL when it is given as a value; required with ``urlSecret``."""
    password_secret: KeyRef | None = None
    """The existing Secret and key of the Sentinels' own password. Default: unset (Sentinels without one)."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the master's name, each Sentinel's address and the password reference."""
        problems = check_master_name(f"{field}.masterName", self.master_name)
        for i, address in enumerate(self.sentinels):
            host, sep, port = str(address).rpartition(":")
            where = f"{field}.sentinels[{i}]"
            if not sep or not port.isdigit() or host.startswith("["):
                problems.append(Problem(where, "is not host:port", shown(address), "e.g. 'sentinel-0.example:26379'"))
                continue
            problems += check_host(where, host) + check_port(where, int(port))
        if self.password_secret is not None:
            problems += self.password_secret.validate(f"{field}.passwordSecret")
        return problems


@args_schema
@dataclass(frozen=True, kw_only=True)
class ExternalBrokerSpec:
    """A Redis the platform does not run; its URL from an existing Secret or from a secret value."""

    url_secret: KeyRef | None = None
    """The existing Secret and key that hold the URL. Default: unset (the URL is given as a secret value)."""
    host: str = ""
    """The broker's host: a hostname, an IPv4 address or a bracketed IPv6 address ``[2001:db8::10]``; read
    from the URL when the URL is given as a value. Default: ``""``."""
    port: int | None = None
    """The broker's port, 1 to 65535. Default: the URL's, else ``6379``."""
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
    sentinel: ExternalSentinel | None = None
    """The broker is fronted by Sentinels (the URL is ``sentinel://:PASSWORD@HOST:26379/0;...``); ``port`` is
    then the data nodes' port, and ``cidr`` (required) must cover the Sentinels and the data nodes. No TLS.
    Default: unset (the URL names the Redis itself)."""

    def sentinel_addresses(self, url: str | None) -> tuple[str, ...]:
        """Every Sentinel as host:port: the setting, else the URL's list (a Sentinel's port defaults to 26379)."""
        if self.sentinel is None:
            return ()
        if self.sentinel.sentinels:
            return tuple(self.sentinel.sentinels)
        if not url:
            return ()
        return tuple(host_port(p.hostname or "", p.port or SENTINEL_PORT) for p in map(urlsplit, url.split(";")))

    def resolve(self, url: str | None) -> tuple[str, int, bool]:
        """Return (host, port, tls), from the fields, else from a URL given as a plain value.

        The host is bare (an IPv6 address without brackets), as REDIS_HOST and redis-cli take it;
        ``addresses.host_port`` joins it with the port. A port of 0 stays 0, for validate to refuse.
        """
        parts = urlsplit(url) if url else None
        try:
            url_port = parts.port if parts else None
        except ValueError:
            url_port = None
        host = bare_host(self.host) if self.host else (parts.hostname or "" if parts else "")
        port = next((p for p in (self.port, url_port) if p is not None), DEFAULT_PORT)
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
        """Return the TLS settings the workers get; a URL given as a value is kept with its checks."""
        if not self.resolve(url)[2]:
            return None
        return BrokerTLS(
            ca_secret=self.ca_secret, ca_config_map=self.ca_config_map, url_has_checks=self.url_secret is None
        )

    def egress_cidr(self, url: str | None) -> str:
        """Return the CIDR the egress policy admits."""
        return self.cidr or ip_cidr(self.resolve(url)[0]) or ""

    def validate(self, field: str, url: Any = None, url_given: bool = False) -> list[Problem]:
        """Return every problem; ``url`` is the URL value when known as a plain string."""
        plain = url if isinstance(url, str) else None
        if self.sentinel is not None or (plain or "").startswith("sentinel://"):
            return self._sentinel_problems(field, plain, url_given)
        problems: list[Problem] = []
        problems += self._url_source_problems(field, url_given)
        if plain is not None:
            problems += check_broker_url("brokerUrl", plain)
            if problems:
                return problems
            parts = urlsplit(plain)
            host_ok = not self.host or not check_host(f"{field}.host", self.host)
            if host_ok and self.host and bare_host(self.host).lower() != (parts.hostname or ""):
                problems.append(
                    Problem(f"{field}.host", "differs from the URL's host", shown(self.host), "the URL's host")
                )
            if self.port is not None and parts.port is not None and self.port != parts.port:
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
        if self.host:
            problems += check_host(f"{field}.host", self.host)
        elif not host:
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

    def _url_source_problems(self, field: str, url_given: bool) -> list[Problem]:
        """Exactly one URL source: the Secret of ``urlSecret``, or the brokerUrl secret value."""
        if self.url_secret is not None and url_given:
            return [Problem(field, "has two URL sources", "urlSecret and a URL value", "one of them")]
        if self.url_secret is None and not url_given:
            return [
                Problem(f"{field}.urlSecret", "no broker URL", "nothing", "urlSecret, or the brokerUrl secret value")
            ]
        return self.url_secret.validate(f"{field}.urlSecret") if self.url_secret is not None else []

    def _sentinel_problems(self, field: str, plain: str | None, url_given: bool) -> list[Problem]:
        """The problems of a Sentinel-fronted external broker: one URL source, the Sentinels, egress, no TLS."""
        problems: list[Problem] = []
        if self.sentinel is None:
            return [Problem(f"{field}.sentinel", "is required for a sentinel:// URL", "nothing", "masterName")]
        problems += self.sentinel.validate(f"{field}.sentinel")
        problems += self._url_source_problems(field, url_given)
        if not self.sentinel.sentinels and plain is None:
            problems.append(
                Problem(
                    f"{field}.sentinel.sentinels",
                    "is required when the URL is in a Secret or a secret Output (unread here)",
                    "[]",
                    "every Sentinel as host:port",
                )
            )
        if plain is not None:
            problems += check_broker_url("brokerUrl", plain)
            if not problems and not plain.startswith("sentinel://"):
                problems.append(
                    Problem(
                        "brokerUrl",
                        "is not a sentinel:// URL, but broker.external.sentinel is set",
                        redacted(plain),
                        "sentinel://...",
                    )
                )
        for name, value in (("tls", self.tls), ("caSecret", self.ca_secret), ("caConfigMap", self.ca_config_map)):
            if value:
                problems.append(Problem(f"{field}.{name}", "TLS to Sentinels is not supported", shown(value), "unset"))
        if self.host:
            problems.append(
                Problem(f"{field}.host", "is not read with Sentinel (they name the primary)", shown(self.host), "unset")
            )
        if self.port is not None:
            problems += check_port(f"{field}.port", self.port)
        if self.database is not None:
            problems += check_count(f"{field}.database", self.database, 0, 65535)
        for name, ref in (("passwordSecret", self.password_secret), ("usernameSecret", self.username_secret)):
            if ref is not None:
                problems += ref.validate(f"{field}.{name}")
        if self.cidr:
            problems += check_cidr(f"{field}.cidr", self.cidr)
        else:
            problems.append(
                Problem(
                    f"{field}.cidr",
                    "is required with Sentinel (the data nodes' addresses come from the Sentinels)",
                    "''",
                    "a subnet that holds the Sentinels and the data nodes, e.g. '10.20.0.0/16'",
                )
            )
        return problems

    def egress_ports(self, url: str | None) -> list[int]:
        """The ports the egress policy opens: the broker's, and with Sentinel each Sentinel's besides."""
        port = self.resolve(url)[1] if self.sentinel is None else (self.port or DEFAULT_PORT)
        sentinel_ports = {int(a.rsplit(":", 1)[1]) for a in self.sentinel_addresses(url)}
        return sorted({port, *sentinel_ports})


BROKER_TYPES = ("redis", "sentinel", "external")


@dataclass(frozen=True, kw_only=True)
class SentinelClient:
    """What a client of a Sentinel-fronted broker needs besides its ``sentinel://`` URL (never a secret value)."""

    master_name: str
    """The name the Sentinels know the primary by."""
    addresses: Any
    """Every Sentinel as ``host:port``: a tuple of str, or an Output of one."""
    password: tuple[Any, str] | None
    """(Secret name, key) of the Sentinels' own password, or None when they have none."""

    def joined(self, separator: str) -> Any:
        """Every Sentinel's host:port joined by ``separator`` (an Output when the addresses are one)."""
        if hasattr(self.addresses, "apply"):
            return self.addresses.apply(separator.join)
        if not self.addresses:
            raise ValueError("sentinels: at least one Sentinel address is needed (got none)")
        return separator.join(self.addresses)


@args_schema
@dataclass(frozen=True, kw_only=True)
class BrokerChoice:
    """Which broker the stack uses: our Redis (the ``redis`` key), ours with Sentinel, or an external one."""

    type: str = "redis"
    """``redis``: one Redis of ours; ``sentinel``: ours as a primary and replicas that Sentinels fail over
    (``sentinel`` sets the topology, ``redis`` the data nodes' image, storage and resources);
    ``external``: the Redis that ``external`` describes. Default: ``"redis"``."""
    sentinel: SentinelSpec | None = None
    """With ``type: sentinel``: replicas, Sentinels, quorum and the failover's timing. Default: unset (each of
    its fields' defaults with ``type: sentinel``)."""
    external: ExternalBrokerSpec | None = None
    """The external broker, with ``type: external``. Default: unset."""

    def sentinel_spec(self) -> SentinelSpec | None:
        """Return the Sentinel settings with ``type: sentinel`` (defaults when unset), else None."""
        if self.type != "sentinel":
            return None
        return self.sentinel if self.sentinel is not None else SentinelSpec()

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the choice itself (the URL is checked with the brokerUrl key)."""
        if self.type not in BROKER_TYPES:
            return [Problem(f"{field}.type", "unknown broker type", shown(self.type), " or ".join(BROKER_TYPES))]
        problems: list[Problem] = []
        if self.type == "external" and self.external is None:
            problems.append(
                Problem(f"{field}.external", "is required with type external", "nothing", "the broker's settings")
            )
        if self.type != "external" and self.external is not None:
            problems.append(
                Problem(f"{field}.external", f"is set, but type is {self.type}", "a mapping", "type: external")
            )
        if self.type != "sentinel" and self.sentinel is not None:
            problems.append(
                Problem(f"{field}.sentinel", f"is set, but type is {self.type}", "a mapping", "type: sentinel")
            )
        if self.sentinel is not None:
            problems += self.sentinel.validate(f"{field}.sentinel")
        return problems
