"""URL helpers shared by the crawlers: canonical form, same-site tests. The records they return live in
:mod:`llm_twin_assets.records`."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
