"""Cleaning raw documents with polars expressions (vectorised; no per-row Python but language id).

Prose (articles, posts) keeps the author's punctuation, emoji and casing: the twin learns style from
them. HTML and Markdown remnants are stripped outside fenced code, bare URLs become their host name
(``github.com``), boilerplate lines (subscribe, share, cookie, copyright...) are dropped, whitespace is
normalised. Code inside fences and whole repositories are kept as code: only line endings, control
characters and runs of blank lines are normalised. Unicode is NFC-normalised (NFKC would rewrite the
author's typography, e.g. an ellipsis into three dots).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

PROSE_KINDS = ("article", "post")
CODE_KINDS = ("repository",)
KNOWN_KINDS = PROSE_KINDS + CODE_KINDS

_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\u2060\ufeff]"
_BOILERPLATE = (
    r"(?i)^\s*(?:"
    r"subscribe\b.*|sign up\b.*|share this\b.*|share on\b.*|follow (?:me|us) on\b.*|"
    r"(?:all rights reserved|copyright|©).{0,80}|.*\bcookies?\b.{0,60}(?:accept|policy|consent).*|"
    r"click here\b.*|read more\b.{0,40}|related posts?:?|advertisement|"
    r"(?:posted|published) (?:on|in) .{0,40}|tags?:.{0,80}|\d+ comments?|leave a (?:comment|reply).*"
    r")\s*$"
)
_ENTITIES = {
    "&nbsp;": " ",
    "&amp;": "&",
    "&lt;": "<",
    "&gt;": ">",
    "&quot;": '"',
    "&#39;": "'",
    "&apos;": "'",
}


@dataclass(frozen=True)
class CleaningOptions:
    max_chars: int = 1_000_000  # longer documents are cut here (and flagged)
    max_damage: float = 0.05  # share of replacement/control characters above which text is rejected
    min_chars: int = 20


def _prose(text: pl.Expr) -> pl.Expr:
    """Clean a prose segment (never fenced code)."""
    text = text.str.replace_all(r"!\[([^\]]*)\]\([^)]*\)", "$1")  # images -> alt text
    text = text.str.replace_all(r"\[([^\]]+)\]\([^)]*\)", "$1")  # links -> their words
    text = text.str.replace_all(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>", "")  # HTML tags
    text = text.str.replace_many(list(_ENTITIES), list(_ENTITIES.values()))
    text = text.str.replace_all(r"(?m)^#{1,6}[ \t]+", "")  # Markdown heading marks
    text = text.str.replace_all(r"(\*\*|__)([^\n*_]+?)(\*\*|__)", "$2")  # bold
    # A bare URL becomes its host; sentence punctuation after it stays.
    text = text.str.replace_all(r"https?://(?:www\.)?([^/\s)>\]]+)(?:[^\s)>\]]*[^\s)>\].,;:!?'\"])?", "$1")
    text = text.str.replace_all(r"[ \t\u00a0]+", " ")
    return text


def _drop_boilerplate_lines(text: pl.Expr) -> pl.Expr:
    return (
        text.str.split("\n")
        .list.eval(
            pl.element().filter(
                ~(pl.element().str.len_chars().lt(160) & pl.element().str.contains(_BOILERPLATE))
            )
        )
        .list.join("\n")
    )


def clean_frame(
    raw: pl.DataFrame, options: CleaningOptions | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cleaned, rejected) from raw rows with columns id, author, url, kind, title, content, content_hash.

    ``cleaned`` has the columns of ``cleaned_documents``; ``rejected`` has id, url, kind and reason.
    """
    options = options or CleaningOptions()
    text = pl.col("content").str.normalize("NFC").str.replace_all(r"\r\n?", "\n")
    damage = pl.col("content").str.count_matches(r"[\ufffd\x00-\x08\x0e-\x1f]").cast(pl.Float64) / pl.col(
        "content"
    ).str.len_chars().clip(lower_bound=1)
    frame = raw.with_columns(
        text.str.replace_all(_CONTROL, "").alias("text"),
        damage.alias("damage"),
        (pl.col("content").str.len_chars() > options.max_chars).alias("truncated"),
    ).with_columns(pl.col("text").str.slice(0, options.max_chars))

    is_prose = pl.col("kind").is_in(PROSE_KINDS)
    # Fenced code survives untouched: split on ``` and clean only the even (prose) segments.
    prose = (
        pl.col("text")
        .str.split("```")
        .list.eval(
            pl.when(pl.int_range(pl.len()) % 2 == 0).then(_prose(pl.element())).otherwise(pl.element())
        )
        .list.join("```")
    )
    frame = frame.with_columns(
        pl.when(is_prose).then(_drop_boilerplate_lines(prose)).otherwise(pl.col("text")).alias("text")
    )
    frame = frame.with_columns(
        pl.col("text")
        .str.replace_all(r"(?m)[ \t]+$", "")  # trailing spaces on every line
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
        .alias("text")
    )
    reason = (
        pl.when(~pl.col("kind").is_in(KNOWN_KINDS))
        .then(pl.format("unknown kind {}", pl.col("kind")))
        .when(pl.col("damage") > options.max_damage)
        .then(
            pl.format(
                "binary-looking or wrongly decoded text ({}% damaged characters)",
                (pl.col("damage") * 100).round(1),
            )
        )
        .when(pl.col("text").str.len_chars() < options.min_chars)
        .then(pl.lit("empty after cleaning"))
        .otherwise(None)
    )
    frame = frame.with_columns(reason.alias("reason"))
    rejected = frame.filter(pl.col("reason").is_not_null()).select("id", "url", "kind", "reason")
    kept = frame.filter(pl.col("reason").is_null()).with_columns(
        pl.col("text").map_batches(_hashes, return_dtype=pl.String).alias("clean_hash")
    )
    # Exact duplicates (same author, same cleaned text): keep the first URL, reject the others.
    kept = kept.sort("author", "url").with_columns(
        pl.col("url").first().over("author", "clean_hash").alias("first_url")
    )
    duplicates = kept.filter(pl.col("url") != pl.col("first_url")).select(
        "id", "url", "kind", pl.format("duplicate of {}", pl.col("first_url")).alias("reason")
    )
    kept = kept.filter(pl.col("url") == pl.col("first_url"))
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
    )
    return cleaned, pl.concat([rejected, duplicates])


def _hashes(texts: pl.Series) -> pl.Series:
    from llm_twin_assets.records import content_hash

    return pl.Series([content_hash(t) for t in texts], dtype=pl.String)


def _languages(texts: pl.Series) -> pl.Series:
    """ISO 639-1 code per text (py3langid, on the first 2,000 characters)."""
    import py3langid

    return pl.Series([py3langid.classify(t[:2000])[0] if t else None for t in texts], dtype=pl.String)
