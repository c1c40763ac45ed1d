"""The links file, ``authors/<slug>.yaml``: a user-facing format, validated with pydantic.

```yaml
name: Jane Doe
links:
  - https://janedoe.substack.com/p/some-post
  - url: https://github.com/janedoe/tool
    kind: repository            # optional: article | post | repository; inferred when absent
  - url: ./exports/linkedin-Shares.csv
    kind: post                  # a LinkedIn data export (Shares.csv), imported as posts
```

Every error names the file, the line and what is wrong. Relative paths are resolved against the
folder of the links file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import Kind

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SCHEMES = ("http://", "https://", "file://", "git://")


class LinksFileError(TwinError):
    """A links file is malformed; the message names the file and the line."""


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)
    kind: Kind | None = None

    @field_validator("url")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip()
        if "://" in value and not value.startswith(_SCHEMES):
            scheme = value.split("://", 1)[0]
            raise ValueError(f"scheme {scheme!r} is not allowed (use http(s), git, file or a local path)")
        if any(ch in value for ch in "\n\r\t"):
            raise ValueError("a link must be one line")
        return value


class AuthorLinks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    links: list[Link] = Field(min_length=1)

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

    def resolve(self, link: Link) -> str:
        """The link with a relative local path made absolute against the links file's folder."""
        url = link.url
        if re.match(r"^[a-z+]+://", url):
            return url
        return str((self.path.parent / Path(url).expanduser()).resolve())


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
        slug=slug, path=path.absolute(), author=author, sha256=hashlib.sha256(text.encode()).hexdigest()
    )


def load(path: Path) -> LinksFile:
    try:
        text = path.read_text(encoding="utf-8")
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
