"""Where pods may connect outside the namespace, and the namespace's Pod Security levels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from celery_platform.config.addresses import check_cidr, check_port, ip_cidr
from celery_platform.config.problems import Problem
from celery_platform.config.schema import args_schema

POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
POSTGRES_PORT = 5432
EVERYWHERE = ("0.0.0.0/0", "::/0")


@args_schema
@dataclass(frozen=True, kw_only=True)
class EgressRule:
    """Addresses outside the namespace that every pod may reach, on these TCP ports."""

    cidr: str
    """An IPv4 or IPv6 CIDR as the API server reads it, e.g. ``10.20.0.0/16`` (no netmask form, zone, leading
    zero or bits beyond the prefix); ``0.0.0.0/0`` only when you mean the whole Internet. Required."""
    ports: tuple[int, ...] = ()
    """TCP ports; empty means every port. Default: every port."""

    def validate(self, field: str) -> list[Problem]:
        """Return the problems of the CIDR and ports."""
        problems = check_cidr(f"{field}.cidr", self.cidr)
        for i, port in enumerate(self.ports):
            problems += check_port(f"{field}.ports[{i}]", port)
        return problems

    def to_k8s(self) -> dict[str, Any]:
        """Return the NetworkPolicy egress rule."""
        rule: dict[str, Any] = {"to": [{"ipBlock": {"cidr": self.cidr}}]}
        if self.ports:
            rule["ports"] = [{"protocol": "TCP", "port": port} for port in self.ports]
        return rule


def database_egress(url: str) -> EgressRule | None:
    """Return the egress rule for the database when its URL names it by IP address, else None.

    NetworkPolicy admits addresses, not names: a database named by DNS needs its CIDR in ``egress``.
    """
    try:
        parts = urlsplit(url)
        port = POSTGRES_PORT if parts.port is None else parts.port  # 0 is refused by check_database_url
    except ValueError:
        return None
    cidr = ip_cidr(parts.hostname or "")
    return EgressRule(cidr=cidr, ports=(port,)) if cidr else None
