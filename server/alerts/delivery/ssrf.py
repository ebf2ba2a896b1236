"""Refusing notification targets inside the server's own network (server-side request forgery).

A target URL is checked when a channel is saved and again before every delivery, on the
addresses its host resolves to at that moment; delivery then connects to the checked
address itself, so a DNS answer that changes in between cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["TargetRefused", "TargetUnresolved", "Target", "Resolver", "parse_target", "resolve_target", "address_class"]

Resolver = Callable[[str, int], list[str]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv4-compatible (deprecated) and SIIT-translated addresses also carry IPv4 in their low 32 bits.
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# Not globally reachable, though older Pythons' `is_global` does not know it of all of them:
# IETF protocol assignments, site-local, local-use NAT64, SRv6 SIDs, IPv6 documentation.
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "192.0.0.0/24", "fec0::/10", "64:ff9b:1::/48", "5f00::/16", "3fff::/20"))


class TargetRefused(ValueError):
    """The URL is malformed, does not resolve, or points at a non-public address."""


class TargetUnresolved(TargetRefused):
    """The host name does not resolve now (which may pass)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    url: str


def parse_target(url: str) -> Target:
    if len(url) > 2000:
        raise TargetRefused("the URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed")
    if any(c in url for c in "\r\n\t "):
        raise TargetRefused("the URL contains whitespace")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), url)


def _embedded(ip: ipaddress._BaseAddress) -> ipaddress._BaseAddress:
    """The IPv4 address inside an IPv6 one that only wraps it (mapped, NAT64, 6to4, Teredo)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64 or ip in _V4_TRANSLATED or (ip in _V4_COMPATIBLE and int(ip) > 1):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return ip


def address_class(address: str) -> str:
    """"public", "loopback" or "private" (anything else that is not globally routable)."""
    ip = _embedded(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip.is_loopback:
        return "loopback"
    if any(ip in network for network in _NOT_PUBLIC if network.version == ip.version):
        return "private"
    if ip.is_global and not ip.is_multicast and not ip.is_unspecified:
        return "public"
    return "private"


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def resolve_target(
    url: str,
    *,
    allow_loopback: bool = False,
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> tuple[Target, str]:
    """The parsed target and the address to connect to; raises TargetRefused."""
    target = parse_target(url)
    try:
        addresses = [str(ipaddress.ip_address(target.host))]
    except ValueError:
        try:
            addresses = (resolver or _system_resolver)(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise TargetUnresolved(f"cannot resolve {target.host!r}: {exc}") from None
    if not addresses:
        raise TargetRefused(f"{target.host!r} resolves to no address")
    for address in addresses:
        kind = address_class(address)
        if kind == "public" or allow_private or (kind == "loopback" and allow_loopback):
            continue
        setting = ("FADEWATCH_ALERT_ALLOW_LOOPBACK_TARGETS" if kind == "loopback"
                   else "FADEWATCH_ALERT_ALLOW_PRIVATE_TARGETS")
        raise TargetRefused(f"{target.host!r} resolves to {address}, a {kind} address: notification "
                            f"targets must be public unless the server sets {setting}=true")
    return target, addresses[0]
