"""URL helpers shared by the crawlers: canonical form, link identities, same-site tests. The records
they return live in :mod:`llm_twin_assets.records`."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from llm_twin_assets.crawling.links import local_path

_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref_src", "source")


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        return url.strip()
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(_TRACKING)
        ]
    )
    path = parts.path.rstrip("/") or "/"
    netloc = parts.netloc.lower()
    for default in (":80", ":443"):
        if netloc.endswith(default) and (parts.scheme, default) in (("http", ":80"), ("https", ":443")):
            netloc = netloc[: -len(default)]
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


_DEFAULT_PORTS = {"http": 80, "https": 443, "git": 9418}


def link_identity(url: str) -> str:
    """What a link names, one spelling per source: the identity a document's ``source_link`` is stored
    under and the removal policy compares with the links file.

    A local link (a plain path, relative ones already made absolute by ``LinksFile.resolve``, or a
    ``file://`` URL) is its real path as a plain path: ``..``, symlinked folders and the URL form all
    name the same file. A web or git link keeps its path and query as written, with its scheme and host
    in lower case, its default port and its fragment dropped. Already canonical spellings are unchanged.
    """
    url = url.strip()
    local = local_path(url)
    if local is not None:
        return os.path.realpath(os.path.abspath(local.expanduser()))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return url  # not for us to judge here: the crawler says what is wrong with it
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if "@" in parts.netloc else "") + host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "").lower(), parts.port or default


def same_site(a: str, b: str) -> bool:
    """True when the hosts are equal or one is a subdomain of the other, on the same port.

    http and https count as one site (a canonical URL often upgrades the scheme)."""
    (ha, pa), (hb, pb) = _host_port(a), _host_port(b)
    if not ha or not hb:
        return False
    if pa != pb and {pa, pb} != {80, 443}:
        return False
    return ha == hb or ha.endswith("." + hb) or hb.endswith("." + ha)
