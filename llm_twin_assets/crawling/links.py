"""The links file, ``authors/<slug>.yaml``: a user-facing format, validated with pydantic.

```yaml
name: Jane Doe
links:
  - https://janedoe.substack.com/p/some-post
  - url: https://github.com/janedoe/tool
    kind: repository            # optional: article | post | repository; inferred when absent
  - url: ./exports/linkedin-Shares.csv
    kind: post                  # a LinkedIn data export (Shares.csv), imported as posts
build:                          # optional: the author's build settings, per asset (see BUILD_ASSETS)
  instruct_dataset: {max_passages: 200}
  sft_adapter: {profile: full}
```

Every error names the file, the line and what is wrong. Relative paths are resolved against the
folder of the links file. Schemes are parsed as RFC 3986 does and compared case-insensitively: http,
https, git and file are allowed (stored in lower case), every other scheme (javascript:, data:,
mailto:, ftp:, ...) is refused by name. A links file is at most 1 MB and 5,000 links.
"""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llm_twin_assets.errors import TwinError
from llm_twin_assets.kinds import KINDS
from llm_twin_assets.records import Kind

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")  # RFC 3986, section 3.1
ALLOWED_SCHEMES = ("http", "https", "git", "file")
MAX_LINKS_FILE_BYTES = 1_000_000
MAX_LINKS = 5_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BUILD_ASSETS = (
    "instruct_dataset",
    "preference_dataset",
    "sft_adapter",
    "dpo_adapter",
    "twin_evaluation",
)
"""The assets whose settings an author's ``build:`` section may set (each one's fields are checked
against that asset's config by ``llm_twin_assets.defs.build_settings``)."""


class LinksFileError(TwinError):
    """A links file is malformed; the message names the file and the line."""


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)
    kind: Kind | None = None

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in KINDS:
            raise ValueError(f"unknown kind {value!r}: use {', '.join(KINDS)}")
        return value

    @field_validator("url")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip()
        if _CONTROL.search(value):
            raise ValueError("a link must be one line, without control characters")
        match = SCHEME.match(value)
        if match is None:
            return value  # a local path
        scheme = match.group(1).lower()
        if scheme not in ALLOWED_SCHEMES:
            raise ValueError(
                f"scheme {scheme!r} is not allowed (use http(s), git, file or a local path; "
                "write a local path with a ':' in its first part as ./name)"
            )
        value = scheme + value[match.end(1) :]
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (parses the port: a bad one raises here, not in a crawler)
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if scheme != "file" and not parts.hostname:
            raise ValueError(f"{scheme} links need a host ({scheme}://host/...)")
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ValueError("a file link names a path on this machine (file:///path), not a host")
        if scheme == "file" and not parts.path.startswith("/"):
            # file:notes/a.md would be read relative to whatever folder the process runs in
            raise ValueError(
                "a file link needs an absolute path (file:///path); write a relative one as ./path"
            )
        return value


class AuthorLinks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    links: list[Link] = Field(min_length=1)
    build: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """The author's build settings: asset name -> that asset's config fields (dataset sizes, teacher,
    training profile and overrides, evaluation settings). Every trigger builds the author with them."""

    @field_validator("build", mode="before")
    @classmethod
    def _known_assets(cls, value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of asset name -> settings")
        unknown = sorted(str(k) for k in value if k not in BUILD_ASSETS)
        if unknown:
            raise ValueError(
                f"no build settings for {', '.join(unknown)} (settings exist for {', '.join(BUILD_ASSETS)})"
            )
        return {k: {} if v is None else v for k, v in value.items()}

    @field_validator("links", mode="before")
    @classmethod
    def _plain_strings_are_links(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"url": item} if isinstance(item, str) else item for item in value]
        return value


class LinksFile(BaseModel):
    """A validated links file: the author, their links, where it came from and its hash."""

    slug: str
    path: Path
    author: AuthorLinks
    sha256: str
    lines: list[int | None] = Field(default_factory=list)
    """The line of each link in the file (for errors found after parsing)."""

    def resolve(self, link: Link) -> str:
        """The link with a relative local path made absolute against the links file's folder."""
        url = link.url
        if SCHEME.match(url):
            return url
        return str((self.path.parent / Path(url).expanduser()).resolve())

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if index < len(self.lines) else None

    build_lines: dict[str, int | None] = Field(default_factory=dict)
    """The line of each ``build`` entry and field (``asset`` and ``asset.field``), for errors."""


def local_path(url: str) -> Path | None:
    """The path a link names on this machine (a plain path or a file:// URL); None for http(s)/git."""
    match = SCHEME.match(url)
    if match is None:
        return Path(url).expanduser()
    if match.group(1).lower() == "file":
        return Path(url2pathname(urlsplit(url).path))
    return None


def slug_of(path: Path) -> str:
    slug = path.stem
    if not SLUG.match(slug):
        raise LinksFileError(
            f"{path}: the file name must be the author's slug (lowercase letters, digits, '-' or '_'), "
            f"got {slug!r}"
        )
    return slug


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def parse(text: str, path: Path) -> LinksFile:
    """Validate links-file text; ``path`` names it in errors and anchors relative links."""
    slug = slug_of(path)
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_LINKS_FILE_BYTES:
        raise LinksFileError(_too_big(path, size))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LinksFileError(f"{path}{where}: not valid YAML ({problem})") from exc
    if not isinstance(data, dict):
        raise LinksFileError(f"{path}, line 1: expected a mapping with 'name' and 'links'")
    if isinstance(data.get("links"), list) and len(data["links"]) > MAX_LINKS:
        raise LinksFileError(
            f"{path}, line {_line_of(root, ('links',))}: {len(data['links']):,} links, over the limit "
            f"of {MAX_LINKS:,} in one links file (split the author's links, or keep the ones that "
            "show their voice best)"
        )
    try:
        author = AuthorLinks.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(
                p for p in error["loc"] if not (isinstance(p, str) and p in ("str", "function-after"))
            )
            line = _line_of(root, loc)
            field = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{path}, line {line}: {field}: {error['msg']}")
        raise LinksFileError("\n".join(problems)) from None
    return LinksFile(
        slug=slug,
        path=path.absolute(),
        author=author,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        lines=[_line_of(root, ("links", index)) for index in range(len(author.links))],
        build_lines={
            key: _line_of(root, ("build", *key.split(".")))
            for asset, fields in author.build.items()
            for key in (asset, *(f"{asset}.{name}" for name in fields))
        },
    )


def _too_big(path: Path, size: int) -> str:
    return (
        f"{path}: {size:,} bytes, over the {MAX_LINKS_FILE_BYTES:,}-byte limit for a links file "
        f"(at most {MAX_LINKS:,} links)"
    )


def load(path: Path) -> LinksFile:
    """Read and validate a links file; its size is checked before it is read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise LinksFileError(f"{path}: not a regular file")
        if info.st_size > MAX_LINKS_FILE_BYTES:
            raise LinksFileError(_too_big(path, info.st_size))
        with path.open("rb") as file:
            data = file.read(MAX_LINKS_FILE_BYTES + 1)  # it may have grown since
        if len(data) > MAX_LINKS_FILE_BYTES:
            raise LinksFileError(_too_big(path, len(data)))
        # Universal newlines, as read_text gives: the hash of a CRLF file stays what it was.
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise LinksFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise LinksFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    return parse(text, path)


def discover(folder: Path) -> dict[str, Path]:
    """slug -> path for every ``*.yaml`` / ``*.yml`` in the authors folder (not validated)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".yaml", ".yml") and p.is_file()}
