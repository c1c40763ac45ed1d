"""What the crawler may reach: schemes, an SSRF guard on every address, and which local files.

The guard resolves the host and refuses loopback, private, link-local (cloud metadata lives there),
multicast, reserved and unspecified addresses, unless private networks are allowed
(``LLM_TWIN_ALLOW_PRIVATE_NETWORKS=1``, for tests and local demos). It runs at connect time, inside the
HTTP client's network backend, on the address actually dialled: a redirect or a DNS answer that
changes between check and use cannot slip past it.

Local files (drafts, LinkedIn exports, local repositories) are read only under the authors folder and
the folders in ``LLM_TWIN_LOCAL_ROOTS`` (see :class:`LocalRoots`): a links file is user input, and
``file:///etc/passwd`` or ``~/.ssh/id_rsa`` must not become training data.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
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

    def check_host_sync(self, host: str, port: int = 443) -> list[str]:
        """The same check for callers outside an event loop (e.g. before ``git clone``): the checked
        addresses, which the caller must dial (or pin) instead of resolving the name again."""
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
        return addresses


# -- local files ----------------------------------------------------------------------------------

DRAFT_SUFFIXES = (".md", ".markdown", ".txt", ".rst", ".text")
EXPORT_SUFFIXES = (".csv",)
LOCAL_TEXT_SUFFIXES = DRAFT_SUFFIXES + EXPORT_SUFFIXES
SETTING = "LLM_TWIN_LOCAL_ROOTS"
_KEY_NAMES = frozenset(
    {
        ".env",
        ".netrc",
        "_netrc",
        ".pgpass",
        "credentials",
        "authorized_keys",
        "known_hosts",
    }
)
_KEY_PREFIXES = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")
_KEY_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".keystore", ".jks")
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")


class LocalPathRefused(TwinError):
    """A link names a local path the rules refuse; the message names the path and the rule."""

    def __init__(self, path: Path | str, rule: str) -> None:
        self.path, self.rule = str(path), rule
        super().__init__(f"{path}: refused: {rule}")


class LocalPathMissing(TwinError):
    """A local file or folder named by a link does not exist: gone at its source."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: no such file or folder")


def key_material(name: str) -> str | None:
    """Why a file with this name holds secrets (SSH and TLS keys, credentials); None if it need not."""
    lowered = name.lower()
    if lowered in _KEY_NAMES:
        return f"{name!r} is a credentials file"
    if lowered.startswith(_KEY_PREFIXES):
        return f"{name!r} is an SSH key"
    if lowered.endswith(_KEY_SUFFIXES):
        return f"{name!r} is key material ({', '.join(_KEY_SUFFIXES)})"
    return None


def holds_private_key(data: bytes) -> bool:
    """True when the bytes contain a PEM/OpenSSH/PGP private key block."""
    return _PRIVATE_KEY.search(data) is not None


def hidden_part(relative: Path) -> str | None:
    """The first hidden component ('.ssh', '.env', ...) of a path relative to its allowed root."""
    return next((part for part in relative.parts if part.startswith(".") and part not in (".", "..")), None)


def walk_refusal(relative: Path) -> str | None:
    """Why a file met while walking a folder is skipped by the rules, by reason; None if it may be read."""
    if hidden_part(relative) is not None:
        return "hidden"
    if key_material(relative.name) is not None:
        return "key material"
    return None


@dataclass(frozen=True)
class LocalRoots:
    """The folders whose files links may name: the authors folder and ``LLM_TWIN_LOCAL_ROOTS``.

    Checks are on real paths (symlinks and ``..`` resolved), so a link inside a root that points
    outside it is refused. Inside a root: folders, and files of the text types only (Markdown/text
    drafts, CSV exports); never a hidden file or folder, never key material.
    """

    folders: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Iterable[Path | str]) -> LocalRoots:
        real = (Path(os.path.realpath(Path(folder).expanduser())) for folder in folders)
        return cls(tuple(dict.fromkeys(real)))

    def root_of(self, real: Path) -> Path | None:
        """The deepest allowed folder holding ``real`` (a root a person named inside a hidden folder
        allows what lies below it)."""
        holding = [root for root in self.folders if real == root or real.is_relative_to(root)]
        return max(holding, key=lambda root: len(root.parts), default=None)

    def describe(self) -> str:
        return ", ".join(str(root) for root in self.folders) or "none"

    def check(self, path: Path) -> Path:
        """The real path of ``path`` when the rules allow reading it.

        LocalPathRefused names the rule that refuses it; LocalPathMissing says an allowed path does
        not exist (the location is checked first, so nothing is told about paths outside the roots).
        """
        given = Path(os.path.abspath(path.expanduser()))
        real = Path(os.path.realpath(given))
        shown = path if real == given else f"{path} (really {real})"
        root = self.root_of(real)
        if root is None:
            raise LocalPathRefused(
                shown,
                f"outside the folders local files are read from ({self.describe()}); "
                f"add its folder to {SETTING} to allow it",
            )
        relatives = [real.relative_to(root)]
        given_root = self.root_of(given)
        if given_root is not None:  # the name the link uses counts too (a hidden symlink)
            relatives.append(given.relative_to(given_root))
        for relative in relatives:
            hidden = hidden_part(relative)
            if hidden is not None:
                raise LocalPathRefused(
                    shown, f"{hidden!r} is hidden; hidden files and folders are never read"
                )
        for name in dict.fromkeys((given.name, real.name)):
            reason = key_material(name)
            if reason is not None:
                raise LocalPathRefused(shown, f"{reason}; key material is never read")
        if not real.exists():
            if not root.is_dir():  # the allowed folder itself is missing (an unmounted drive): not gone
                raise LocalPathRefused(shown, f"its allowed folder {root} is not there (not mounted?)")
            raise LocalPathMissing(path)
        if real.is_dir():
            return real
        if not real.is_file():
            raise LocalPathRefused(shown, "not a regular file or folder")
        if real.suffix.lower() not in LOCAL_TEXT_SUFFIXES:
            raise LocalPathRefused(
                shown, f"not a text file of a type read ({', '.join(LOCAL_TEXT_SUFFIXES)}) or a folder"
            )
        return real


def refuse_private_key(path: Path | str, data: bytes) -> None:
    """Raise LocalPathRefused when a file named by a link holds a private key."""
    if holds_private_key(data):
        raise LocalPathRefused(path, "holds a private key ('-----BEGIN ... PRIVATE KEY-----'); never read")
