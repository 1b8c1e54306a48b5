"""The rules of network addresses: CIDRs, broker hosts, ports, and ``host:port`` as each consumer reads it.

One home for every address rule, written to the grammar of the program that consumes the value:

- a CIDR goes into a NetworkPolicy ``ipBlock.cidr``. The API server (k8s 1.37, StrictIPCIDRValidation on
  by default since 1.36) accepts it when both k8s.io/utils' ``ParseCIDRSloppy`` (Go's old
  ``net.ParseCIDR``) and Go's ``net/netip.ParsePrefix`` do, the address is no IPv4-mapped IPv6
  address, and no bit is set beyond the prefix length (apimachinery ``validation.parseCIDR``).
  Python's ``ipaddress`` reads a wider grammar (netmask form ``10.0.0.0/255.0.0.0``, zones
  ``fe80::%eth0/64``, prefix ``/024``), so the grammar is ported here from Go's netip instead;
- a broker host goes into REDIS_HOST (redis-cli, redis-py), the broker URL and KEDA's
  ``host:port`` address: a hostname, an IPv4 address or a bracketed IPv6 address;
- a port is 1 to 65535: 0 is refused, never replaced.
"""

from __future__ import annotations

import ipaddress
import re

from celery_platform.config.problems import Problem, shown

CIDR_EXAMPLE = "e.g. '10.20.0.0/16' or '2001:db8::/64'"
_DIGITS = re.compile(r"[0-9]+")
# An RFC 1123 hostname as resolvers take it: labels of letters, digits and '-', not at either end.
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?")


class AddressError(ValueError):
    """Why a text is not an address in Go's grammar."""


def _ipv4(text: str) -> bytes:
    """Go's ``parseIPv4Fields``: four decimal octets, no leading zero, none above 255, ASCII digits only."""
    fields = text.split(".")
    if len(fields) != 4:
        raise AddressError("an IPv4 address has four dot-separated octets")
    out = []
    for octet in fields:
        if not _DIGITS.fullmatch(octet):
            raise AddressError("an IPv4 octet is 1 to 3 digits 0-9")
        if len(octet) > 1 and octet[0] == "0":
            raise AddressError("an IPv4 octet has no leading zero (Go reads none)")
        if int(octet) > 255:
            raise AddressError("an IPv4 octet is at most 255")
        out.append(int(octet))
    return bytes(out)


def _ipv6(text: str) -> bytes:
    """Go's netip ``parseIPv6``, without a zone (a zone has no place in a CIDR or a broker host)."""
    if "%" in text:
        raise AddressError("an IPv6 zone (%...) has no place here")
    groups: list[int] = []
    ellipsis = -1
    s = text
    if s.startswith("::"):
        ellipsis, s = 0, s[2:]
        if not s:
            return bytes(16)
    tail = b""
    while len(groups) * 2 < 16:
        match = re.match(r"[0-9A-Fa-f]*", s)
        digits = match.group(0) if match else ""
        if len(digits) > 4:
            raise AddressError("an IPv6 group has at most 4 hex digits")
        if not digits:
            raise AddressError("each colon-separated IPv6 group has at least one hex digit")
        rest = s[len(digits) :]
        if rest.startswith("."):
            if ellipsis < 0 and len(groups) != 6:
                raise AddressError("an embedded IPv4 address replaces the last two IPv6 groups")
            if len(groups) * 2 + 4 > 16:
                raise AddressError("no room for an embedded IPv4 address")
            tail, s = _ipv4(s), ""
            break
        groups.append(int(digits, 16))
        s = rest
        if not s:
            break
        if s[0] != ":" or len(s) == 1:
            raise AddressError("IPv6 groups are separated by ':'")
        s = s[1:]
        if s[0] == ":":
            if ellipsis >= 0:
                raise AddressError("an IPv6 address has at most one '::'")
            ellipsis, s = len(groups), s[1:]
            if not s:
                break
    if s:
        raise AddressError("trailing characters after the IPv6 address")
    head = b"".join(g.to_bytes(2, "big") for g in groups) + tail
    if len(head) < 16:
        if ellipsis < 0:
            raise AddressError("an IPv6 address without '::' has eight groups")
        at = ellipsis * 2
        return head[:at] + bytes(16 - len(head)) + head[at:]
    if ellipsis >= 0:
        raise AddressError("'::' stands for at least one group of zeros")
    return head


def go_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse ``text`` as Go's ``netip.ParseAddr`` does (without zones); raise AddressError."""
    for ch in text:
        if ch == ".":
            return ipaddress.IPv4Address(_ipv4(text))
        if ch == ":":
            return ipaddress.IPv6Address(_ipv6(text))
        if ch == "%":
            break
    raise AddressError("neither an IPv4 nor an IPv6 address")


def go_prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse a CIDR as the API server's NetworkPolicy validation does; raise AddressError with the reason."""
    address_text, slash, bits_text = text.partition("/")
    if not slash:
        raise AddressError("has no prefix length")
    if "/" in bits_text:
        raise AddressError("has more than one '/'")
    if "." in bits_text or ":" in bits_text:
        raise AddressError("the netmask form is no prefix length (Go reads only /LENGTH)")
    address = go_address(address_text)
    if not _DIGITS.fullmatch(bits_text):
        raise AddressError("the prefix length is a whole number of digits 0-9")
    if len(bits_text) > 1 and bits_text[0] == "0":
        raise AddressError("the prefix length has no leading zero")
    bits = int(bits_text)
    if bits > address.max_prefixlen:
        raise AddressError(f"the prefix length is at most {address.max_prefixlen}")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise AddressError(f"an IPv4-mapped IPv6 address; write the IPv4 CIDR ({address.ipv4_mapped}/...)")
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    if network.network_address != address:
        raise AddressError(f"has bits set beyond the prefix length (the network is {network})")
    return network


def check_cidr(field: str, value: object) -> list[Problem]:
    """Check an IPv4 or IPv6 CIDR as a NetworkPolicy ipBlock takes it (Go's grammar, host bits zero)."""
    if not isinstance(value, str):
        return [Problem(field, "not a CIDR", shown(value), f"a CIDR text, {CIDR_EXAMPLE}")]
    try:
        go_prefix(value)
    except AddressError as err:
        return [Problem(field, f"not a CIDR: {err}", shown(value), CIDR_EXAMPLE)]
    return []


def check_port(field: str, value: object) -> list[Problem]:
    """Check a TCP port number: 1 to 65535 (0 is no port, and is never replaced by a default)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [Problem(field, "not a port", shown(value), "a whole number from 1 to 65535")]
    return []


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return the address when ``host`` is an IPv4 or (bracketed or bare) IPv6 literal in Go's grammar."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return go_address(text)
    except AddressError:
        return None


def ip_cidr(host: str) -> str | None:
    """Return ``host/32`` (or ``/128``) when ``host`` is an IP literal, else None."""
    address = ip_literal(host)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the packets carry the IPv4 address, and the API server refuses 4-in-6
    return f"{address}/{address.max_prefixlen}"


def check_host(field: str, value: object) -> list[Problem]:
    """Check a broker host: an RFC 1123 hostname, an IPv4 address or a bracketed IPv6 address.

    The host goes into REDIS_HOST, the broker URL and KEDA's ``host:port``: a space, ``user@``, an
    empty label or a line break would make a host no client resolves, and wait-for-broker would wait forever.
    """
    expected = "a hostname (e.g. 'redis.example.com'), an IPv4 address or a bracketed IPv6 address '[2001:db8::10]'"
    if not isinstance(value, str) or not value:
        return [Problem(field, "not a host", shown(value), expected)]
    if "@" in value:
        credentials = expected + "; credentials go in the URL"
        return [Problem(field, "holds user info ('user:password@')", shown(value), credentials)]
    if value.startswith("["):
        if not value.endswith("]"):
            return [Problem(field, "an IPv6 address without its closing ']'", shown(value), expected)]
        try:
            address = go_address(value[1:-1])
        except AddressError as err:
            return [Problem(field, f"not an IPv6 address: {err}", shown(value), expected)]
        if not isinstance(address, ipaddress.IPv6Address):
            return [Problem(field, "brackets hold an IPv6 address only", shown(value), f"'{address}'")]
        if address.ipv4_mapped is not None:
            ipv4 = f"the IPv4 address '{address.ipv4_mapped}'"
            return [Problem(field, "an IPv4-mapped IPv6 address", shown(value), ipv4)]
        return []
    if ":" in value:
        where = "an IPv6 address without brackets, or a port, in a host"
        return [Problem(field, where, shown(value), expected + "; the port goes in port")]
    if re.fullmatch(r"[0-9.]+", value):
        try:
            _ipv4(value)
        except AddressError as err:
            return [Problem(field, f"not an IPv4 address: {err}", shown(value), expected)]
        return []
    labels = value.split(".")
    if len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return [
            Problem(
                field,
                "not a hostname",
                shown(value),
                expected + "; a hostname is labels of letters, digits and '-' (not at either end) joined by '.', "
                "each at most 63 and all at most 253 characters",
            )
        ]
    return []


def bare_host(host: str) -> str:
    """The host as a client library takes it alone (REDIS_HOST, ``redis-cli -h``): IPv6 without brackets."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def host_port(host: str, port: int) -> str:
    """``host:port`` as KEDA, Go's ``net.JoinHostPort`` and URLs spell it: an IPv6 address in brackets."""
    bare = bare_host(host)
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"
