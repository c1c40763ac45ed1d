"""What the crawler may reach: schemes, and an SSRF guard on every address it connects to.

The guard resolves the host and refuses loopback, private, link-local (cloud metadata lives there),
multicast, reserved and unspecified addresses, unless private networks are allowed
(``LLM_TWIN_ALLOW_PRIVATE_NETWORKS=1``, for tests and local demos). It runs at connect time, inside the
HTTP client's network backend, on the address actually dialled: a redirect or a DNS answer that
changes between check and use cannot slip past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from llm_twin_assets.errors import TwinError

WEB_SCHEMES = ("http", "https")
# Cloud metadata endpoints beyond the link-local range (AWS IPv6, Alibaba).
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


class BlockedAddress(TwinError):
    """The guard refused a host (its message says which address and why)."""


class SchemeNotAllowed(TwinError):
    pass


def check_web_url(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in WEB_SCHEMES:
        raise SchemeNotAllowed(f"{url}: only http and https pages are fetched (got {scheme or 'no'} scheme)")


def refusal(address: str) -> str | None:
    """Why this IP address may not be reached with private networks disallowed; None if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    for reason, flag in (
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata lives there)", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
    ):
        if flag:
            return f"a {reason} address"
    if not ip.is_global:
        return "not a public address"
    return None


class NetworkGuard:
    """Resolves hosts and checks every address before the crawler connects."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def check_addresses(self, host: str, addresses: Iterable[str]) -> None:
        if self.allow_private:
            return
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise BlockedAddress(
                    f"{host} resolves to {address}, {reason}; refused to protect internal services "
                    "(set LLM_TWIN_ALLOW_PRIVATE_NETWORKS=1 only for local tests and demos)"
                )

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, checked; raise BlockedAddress if any is refused."""
        try:
            ipaddress.ip_address(host.strip("[]"))
            addresses = [host.strip("[]")]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise BlockedAddress(f"{host} does not resolve ({exc.strerror})") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.check_addresses(host, addresses)
        return addresses

    def check_host_sync(self, host: str, port: int = 443) -> None:
        """The same check for callers outside an event loop (e.g. before ``git clone``)."""
        try:
            ipaddress.ip_address(host.strip("[]"))
            addresses = [host.strip("[]")]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise BlockedAddress(f"{host} does not resolve ({exc.strerror})") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.check_addresses(host, addresses)
