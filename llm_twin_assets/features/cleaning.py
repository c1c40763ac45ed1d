"""Cleaning raw documents: polars for the frame (normalising, rejecting, deduplicating), a few regular
expressions for the prose of each document.

Cleaning removes only what is listed here; everything else the author wrote stays, character for
character (punctuation, emoji, casing, line breaks, backslashes, ``<path>``-like placeholders): the
twin learns style from it, and datasets quote it verbatim.

Every document:

- Unicode is NFC-normalised (NFKC would rewrite the author's typography, e.g. an ellipsis into three
  dots); line endings become ``\\n``;
- control characters (C0 but tab and line feed, DEL) and the invisible ZWSP (U+200B), word joiner
  (U+2060) and BOM (U+FEFF) are removed; ZWJ and ZWNJ stay (emoji sequences, Persian and Indic words);
- spaces and tabs at the end of a line, blank lines beyond one in a row, and blank space at the start
  and end of the document are removed; a document longer than ``max_chars`` is cut there.

Prose (articles, posts), outside fenced code (between two ```` ``` ```` fences) and inline code spans
(`` `...` ``), which are kept exactly:

- Markdown images ``![alt](src)`` become their alt text, links ``[text](url)`` their text, autolinks
  ``<https://...>`` their URL;
- HTML markup is removed: comments ``<!-- ... -->``, closing tags of HTML elements (``</p>``), and
  opening tags of HTML elements that carry an attribute with a value (``<a href="...">``), close
  themselves (``<br/>``), are ``<br>``, ``<hr>``, ``<wbr>`` or ``<img>``, or are closed in the same
  document (``<b>`` when a ``</b>`` is there too); a ``<br>`` becomes the line break it shows. Nothing
  else between angle brackets is markup: ``<path>``, ``<your-token>``, ``x < y > z`` or a lone
  ``a <b> c`` stay;
- then the entities ``&nbsp; &amp; &lt; &gt; &quot; &#39; &apos;`` become their characters;
- Markdown heading marks (``#`` to ``######`` and the space after, at the start of a line) and bold
  marks around a phrase (the heading's place and level are kept as the document's structure:
  ``headings``, offsets into the cleaned text, which chunks and passages follow) (``**really**``, not inside a word: ``2**3**4`` stays) are removed; ``__``,
  ``_`` and single ``*`` are left alone (``__init__``, ``MAX_RETRIES``, ``a*b*c``);
- a bare URL becomes its host (``github.com``), the punctuation after it kept;
- a run of spaces, tabs and no-break spaces becomes one space;
- boilerplate lines (subscribe, share, cookie, copyright...) shorter than 160 characters are dropped.

Repositories are code: only the every-document rules apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from llm_twin_assets.kinds import KINDS, kinds_of

CLEANER_VERSION = 2
"""Stored with every verdict: documents cleaned (or rejected) by another version are cleaned again on the
next run. 1: the first rules; 2: only documented markup removed, headings recorded."""

PROSE_KINDS = kinds_of("prose")
CODE_KINDS = kinds_of("code")

_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u2060\ufeff]"
_BOILERPLATE = re.compile(
    r"(?i)^\s*(?:"
    r"subscribe\b.*|sign up\b.*|share this\b.*|share on\b.*|follow (?:me|us) on\b.*|"
    r"(?:all rights reserved|copyright|©).{0,80}|.*\bcookies?\b.{0,60}(?:accept|policy|consent).*|"
    r"click here\b.*|read more\b.{0,40}|related posts?:?|advertisement|"
    r"(?:posted|published) (?:on|in) .{0,40}|tags?:.{0,80}|\d+ comments?|leave a (?:comment|reply).*"
    r")\s*$"
)
_ENTITIES = {
    "&nbsp;": "\u00a0",  # then a space, with the other blank runs
    "&amp;": "&",
    "&lt;": "<",
    "&gt;": ">",
    "&quot;": '"',
    "&#39;": "'",
    "&apos;": "'",
}
HTML_ELEMENTS = frozenset(
    """a abbr address area article aside audio b base bdi bdo blockquote body br button canvas caption
    cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset figcaption
    figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input ins kbd label
    legend li link main map mark menu meta meter nav noscript object ol optgroup option output p param
    picture pre progress q rp rt ruby s samp script search section select slot small source span strong
    style sub summary sup svg table tbody td template textarea tfoot th thead time title tr track u ul
    var video wbr acronym big center font strike tt""".split()  # noqa: SIM905 (a list literal of 120 names reads worse)
)
"""The element names whose tags cleaning may remove (the HTML standard's, and a few obsolete ones)."""
_BARE_VOID = frozenset(("br", "hr", "wbr", "img"))  # markup even without attributes or a closing tag

# An inline code span (CommonMark: a run of backticks, closed by a run as long, within a paragraph).
_CODE_SPAN = re.compile(r"(?<!`)(?P<ticks>`+)(?!`)(?:(?!\n[ \t]*\n)[\s\S]){1,4000}?(?<!`)(?P=ticks)(?!`)")
# While the prose rules run, each code span is held out of the text as \x00<n>\x01 (C0 controls are gone
# by then); the rules' character classes exclude both marks, so no rule cuts into one.
_HELD = re.compile(r"\x00(\d+)\x01")
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?:<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)(?:\s+\"[^\"\n]*\")?\)")
_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?:<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)(?:\s+\"[^\"\n]*\")?\)")
_AUTOLINK = re.compile(r"<(?P<url>https?://[^\s<>`\x00\x01]+)>")
_COMMENT = re.compile(r"<!--[\s\S]*?-->")
_CLOSING = re.compile(r"</(?P<closing>[A-Za-z][A-Za-z0-9]*)\s*>")
_OPENING = re.compile(
    r"<(?P<name>[A-Za-z][A-Za-z0-9]*)"
    r"(?P<attributes>(?:\s+[^\s\"'<>/=`\x00\x01]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`\x00\x01]+))?)*)"
    r"\s*(?P<closed>/?)>"
)
_ENTITY = re.compile("|".join(_ENTITIES))
_HEADING_MARK = re.compile(r"^#{1,6}[ \t]+", re.MULTILINE)
_BOLD = re.compile(r"(?<![\w*\\])\*\*(?=\S)(?P<bold>(?:(?!\*\*)[^\n])*?\S)\*\*(?!\w)")
_URL = re.compile(
    r"https?://(?:www\.)?(?P<host>[^/\s)>\]`\x00\x01]+)(?:[^\s)>\]`\x00\x01]*[^\s)>\]`\x00\x01.,;:!?'\"])?"
)
_BLANKS = re.compile(r"[ \t\u00a0]{2,}|[\t\u00a0]")
# While cleaning runs, a heading's mark is held in the text as \x02<level>\x03 (C0 controls are gone by
# then); at the end each is taken out and its place recorded.
_HEADING_AT = re.compile(r"\x02([1-6])\x03")


def _apply(rule: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str, *triggers: str) -> str:
    """``text`` with every match of ``rule`` replaced. Skipped unless one of the ``triggers`` is in the
    text: most prose has no markup at all, and looking for a string is cheap."""
    return rule.sub(replace, text) if any(t in text for t in triggers) else text


def _opening_tag(closed_in_text: set[str]) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        name = m["name"].lower()
        markup = name in HTML_ELEMENTS and (
            bool(m["closed"]) or name in _BARE_VOID or "=" in m["attributes"] or name in closed_in_text
        )
        if not markup:
            return m[0]
        return "\n" if name == "br" else ""  # the line break it shows

    return replace


def _clean_prose_part(text: str, code: list[str], closed_in_text: set[str]) -> str:
    """One stretch of prose between fenced code blocks, its inline ``code`` held out."""
    text = _apply(_IMAGE, lambda m: m["alt"], text, "![")
    text = _apply(_LINK, lambda m: m["text"], text, "](")
    text = _apply(_AUTOLINK, lambda m: m["url"], text, "<http")
    text = _apply(_COMMENT, lambda m: "", text, "<!--")
    text = _apply(_CLOSING, lambda m: "" if m["closing"].lower() in HTML_ELEMENTS else m[0], text, "</")
    text = _apply(_OPENING, _opening_tag(closed_in_text), text, "<")
    text = _apply(_ENTITY, lambda m: _ENTITIES[m[0]], text, "&")
    text = _apply(_HEADING_MARK, lambda m: f"\x02{len(m[0].rstrip())}\x03", text, "#")
    text = _apply(_BOLD, lambda m: m["bold"], text, "**")
    text = _apply(_URL, lambda m: m["host"], text, "http")
    text = _apply(_BLANKS, lambda m: " ", text, "  ", "\t", "\u00a0")
    text = _apply(_HELD, lambda m: code[int(m[1])], text, "\x00")
    lines = text.split("\n")
    return "\n".join(
        line for line in lines if len(line) >= 160 or not _BOILERPLATE.match(_HEADING_AT.sub("", line))
    )


def _hold_code(text: str) -> tuple[str, list[str]]:
    """``text`` with its inline code spans held out, and the spans."""
    code: list[str] = []
    if "`" not in text:
        return text, code

    def hold(m: re.Match[str]) -> str:
        code.append(m[0])
        return f"\x00{len(code) - 1}\x01"

    return _CODE_SPAN.sub(hold, text), code


def clean_prose(text: str) -> str:
    """The prose rules of the module docstring, on one text without C0 control characters (fenced code,
    `` ``` ... ``` ``, untouched)."""
    parts = text.split("```")
    # An odd number of fences leaves the tail as code: nothing that may be code is cleaned.
    prose = [_hold_code(part) for part in parts[::2]]
    closed = {m["closing"].lower() for part, _ in prose if "</" in part for m in _CLOSING.finditer(part)}
    parts[::2] = [_clean_prose_part(part, code, closed) for part, code in prose]
    return "```".join(parts)


@dataclass(frozen=True)
class CleaningOptions:
    max_chars: int = 1_000_000  # longer documents are cut here (and flagged)
    max_damage: float = 0.05  # share of replacement/control characters above which text is rejected
    min_chars: int = 20


def _clean_texts(rows: pl.Series) -> pl.Series:
    """The prose rules on prose rows (a struct of kind and text); other rows as they are."""
    kinds, texts = rows.struct.field("kind").to_list(), rows.struct.field("text").to_list()
    return pl.Series(
        [clean_prose(t) if t and k in PROSE_KINDS else t for k, t in zip(kinds, texts, strict=True)],
        dtype=pl.String,
    )


def take_headings(text: str) -> tuple[str, list[list[int]]]:
    """``text`` without its held heading marks, and each heading as [start, end, level]: the span of its
    line in the returned text."""
    if "\x02" not in text:
        return text, []
    out: list[str] = []
    headings: list[list[int]] = []
    position = removed = 0
    for m in _HEADING_AT.finditer(text):
        out.append(text[position : m.start()])
        start = m.start() - removed
        removed += m.end() - m.start()
        line_end = text.find("\n", m.end())
        end = (len(text) if line_end < 0 else line_end) - removed
        if end > start:  # an empty heading marks nothing
            headings.append([start, end, int(m[1])])
        position = m.end()
    out.append(text[position:])
    return "".join(out), headings


def _take_headings(texts: pl.Series) -> pl.Series:
    import json

    taken = [take_headings(t) if t is not None else (None, []) for t in texts]
    return pl.Series(
        [{"text": t, "headings": json.dumps(h)} for t, h in taken],
        dtype=pl.Struct({"text": pl.String, "headings": pl.String}),
    )


def clean_frame(
    raw: pl.DataFrame, options: CleaningOptions | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cleaned, rejected) from raw rows with columns id, author, url, kind, title, content, content_hash.

    ``cleaned`` has the columns of ``cleaned_documents``; ``rejected`` has the columns of
    ``store.cleaned.REJECTED_SCHEMA``: a reason (duplicate, empty, damaged, unknown_kind), a detail for
    people, and for a duplicate the id it repeats and the cleaned text's hash. Duplicates are judged
    among these rows only; the store judges them against what it already holds.
    """
    options = options or CleaningOptions()
    frame = _with_reasons(_cleaned_text(raw, options), options)
    rejected = frame.filter(pl.col("reason").is_not_null()).select(
        "id",
        "url",
        "kind",
        pl.col("content_hash").alias("raw_content_hash"),
        "reason",
        "detail",
        pl.lit(None, dtype=pl.String).alias("duplicate_of"),
        pl.lit(None, dtype=pl.String).alias("clean_hash"),
    )
    kept, duplicates = _without_duplicates(
        frame.filter(pl.col("reason").is_null()).with_columns(
            pl.col("text").map_batches(_hashes, return_dtype=pl.String).alias("clean_hash")
        )
    )
    cleaned = kept.select(
        "id",
        "author",
        "url",
        "kind",
        "title",
        pl.col("text").alias("content"),
        pl.col("clean_hash").alias("content_hash"),
        pl.col("content_hash").alias("raw_content_hash"),
        pl.when(pl.col("kind").is_in(CODE_KINDS))
        .then(pl.lit("code"))
        .otherwise(pl.col("text").map_batches(_languages, return_dtype=pl.String))
        .alias("language"),
        pl.col("text").str.len_chars().cast(pl.Int32).alias("n_chars"),
        "truncated",
        "headings",
    )
    return cleaned, pl.concat([rejected, duplicates])


def _cleaned_text(raw: pl.DataFrame, options: CleaningOptions) -> pl.DataFrame:
    """The raw rows with ``text`` (normalised, control characters out, cut at ``max_chars``, the kind's
    cleaning rules applied, blank runs collapsed, headings taken out into ``headings``), the share of
    damaged characters (``damage``) and whether it was cut (``truncated``)."""
    text = pl.col("content").str.normalize("NFC").str.replace_all(r"\r\n?", "\n")
    damage = pl.col("content").str.count_matches(r"[\ufffd\x00-\x08\x0e-\x1f]").cast(pl.Float64) / pl.col(
        "content"
    ).str.len_chars().clip(lower_bound=1)
    frame = raw.with_columns(
        text.str.replace_all(_CONTROL, "").alias("text"),
        damage.alias("damage"),
        (pl.col("content").str.len_chars() > options.max_chars).alias("truncated"),
    ).with_columns(pl.col("text").str.slice(0, options.max_chars))
    frame = frame.with_columns(
        pl.struct("kind", "text").map_batches(_clean_texts, return_dtype=pl.String).alias("text")
    )
    return (
        frame.with_columns(
            pl.col("text")
            .str.replace_all(r"(?m)[ \t]+$", "")  # trailing spaces on every line
            .str.replace_all(r"\n{3,}", "\n\n")
            .str.strip_chars()
            .map_batches(_take_headings, return_dtype=pl.Struct({"text": pl.String, "headings": pl.String}))
            .alias("parts")
        )
        .with_columns(pl.col("parts").struct.field("text"), pl.col("parts").struct.field("headings"))
        .drop("parts")
    )


def _with_reasons(frame: pl.DataFrame, options: CleaningOptions) -> pl.DataFrame:
    """``reason`` (unknown_kind, damaged, empty; null when kept) and ``detail`` for people."""
    unknown = ~pl.col("kind").is_in(KINDS)
    damaged = pl.col("damage") > options.max_damage
    empty = pl.col("text").str.len_chars() < options.min_chars
    return frame.with_columns(
        pl.when(unknown)
        .then(pl.lit("unknown_kind"))
        .when(damaged)
        .then(pl.lit("damaged"))
        .when(empty)
        .then(pl.lit("empty"))
        .otherwise(None)
        .alias("reason"),
        pl.when(unknown)
        .then(pl.format("unknown kind {}", pl.col("kind")))
        .when(damaged)
        .then(
            pl.format(
                "binary-looking or wrongly decoded text ({}% damaged characters)",
                (pl.col("damage") * 100).round(1),
            )
        )
        .when(empty)
        .then(pl.lit("empty after cleaning"))
        .otherwise(None)
        .alias("detail"),
    )


def _without_duplicates(kept: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exact duplicates (same author, same cleaned text): the first URL kept, the others rejected."""
    kept = kept.sort("author", "url").with_columns(
        pl.col("url").first().over("author", "clean_hash").alias("first_url"),
        pl.col("id").first().over("author", "clean_hash").alias("first_id"),
    )
    duplicates = kept.filter(pl.col("url") != pl.col("first_url")).select(
        "id",
        "url",
        "kind",
        pl.col("content_hash").alias("raw_content_hash"),
        pl.lit("duplicate").alias("reason"),
        pl.format("duplicate of {}", pl.col("first_url")).alias("detail"),
        pl.col("first_id").alias("duplicate_of"),
        "clean_hash",
    )
    return kept.filter(pl.col("url") == pl.col("first_url")), duplicates


def _hashes(texts: pl.Series) -> pl.Series:
    from llm_twin_assets.records import content_hash

    return pl.Series([content_hash(t) for t in texts], dtype=pl.String)


def _languages(texts: pl.Series) -> pl.Series:
    """ISO 639-1 code per text (py3langid, on the first 2,000 characters)."""
    import py3langid

    return pl.Series([py3langid.classify(t[:2000])[0] if t else None for t in texts], dtype=pl.String)
