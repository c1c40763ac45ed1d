"""Token-aware chunking with the embedding model's own tokenizer, per document kind.

Every chunk is a span of its cleaned document, ``chunk.text == text[chunk.start:chunk.end]``: the
author's exact text, nothing between its ends dropped, added or rewritten (closing quotes, line breaks,
indentation). The chunks of a document cover all of its text but blank space, in order; consecutive
chunks may overlap. No chunk is longer than the embedder reads (``max_tokens`` word-pieces, special
tokens included), so nothing is silently truncated at embedding time:

- articles: paragraphs and sentences packed up to ``target_tokens`` with ``overlap_tokens`` of the
  previous chunk's closing sentences repeated; a new paragraph is preferred as a break point.
- posts: whole when they fit, otherwise like articles.
- repositories: split on file sections (``␞ path`` lines, as the crawler writes them), then on
  top-level definitions, packed up to the limit; a file's first chunk starts with its ``␞ path`` line.

Chunks are packed from units, themselves spans:

- a paragraph ends at a blank line;
- a sentence ends after ``.``, ``!``, ``?``, ``…`` (or a run of them, ``...``, ``?!``) and the closing
  quotes and brackets right after them (``" ' ) ] } ” ’ » 」`` ...), when white space and a sentence
  that does not start in lower case follow; after ``。！？`` even without white space. Not after an
  abbreviation (``Mr.``, ``e.g.``) or an initial (``J.``), after a list number at the start of a line
  (``1.``), nor inside brackets or a double quotation still open;
- a line that starts a list item (``-``, ``*``, ``+``, ``•``, ``1.``, ``1)``) starts a unit; other line
  breaks (a poem, an address) keep their lines together;
- a repository section is cut before each top-level definition (not between a decorator and what it
  decorates).

A unit longer than the limit is cut at line breaks, then between words, then (a word that long: a URL,
a hash, minified code) between characters, never inside one drawn symbol (a letter and its combining
marks, an emoji sequence).

Structure (prose): a heading line (the cleaner records where headings are) is a unit of its own that
starts a chunk (headings in a row stay together with what follows them); a fenced code block and a
table are one unit each (never cut at a sentence, cut by lines only when over the limit). Each chunk
carries its heading path (the headings above it, outermost first; for code, the file's path) and a
context, its document's title and heading path, that is embedded above it (``context_tokens`` of the
budget are kept for it) but is never part of its text. With ``units="blocks"`` (dataset passages)
units are whole paragraphs, list items, headings, code blocks and tables, so a window starts and ends
where one does; only a block over the limit is cut, at sentences.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence

from llm_twin_assets.features.packing import ChunkingOptions, Unit, expand, pack, split_long
from llm_twin_assets.features.sentences import (
    LIST_ITEM,
    NON_SPACE,
    Span,
    paragraph_spans,
    sentence_spans,
    trimmed,
)
from llm_twin_assets.features.tokens import Counter, TokenCounter
from llm_twin_assets.kinds import document_kind, is_code
from llm_twin_assets.records import Chunk, chunk_id, content_hash

CHUNKER_VERSION = 3
"""Changes whenever the same text and options give other chunks; part of the ``chunks`` asset's key.
1: units were re-joined strings; 2: every chunk a span of its document (``Chunk.start``/``end``);
3: headings start chunks, code blocks and tables are units, heading paths and embedded context."""

_FILE = re.compile(r"(?m)^\u241e [^\n]*$")
_TOP_LEVEL = re.compile(
    r"(?m)^(?:async def |def |class |function |export |const |let |fn |pub |impl |struct |enum |trait |"
    r"func |type |interface |module |public |private |@)"
)


Heading = tuple[int, int, int]  # start, end (of the heading's line) and level
_FENCE = re.compile(r"(?m)^[^\S\n]*```[\s\S]*?(?:^[^\S\n]*```[^\n]*$|\Z)")
_TABLE_ROW = re.compile(r"[^\S\n]*\|")


def block_spans(text: str, start: int, end: int) -> list[Span]:
    """The list items of the paragraph ``text[start:end]`` (the whole paragraph when it has none)."""
    cuts = [start, *(m.start() for m in LIST_ITEM.finditer(text, start, end)), end]
    return [span for s, e in itertools.pairwise(cuts) if (span := trimmed(text, s, e)) is not None]


def _blocks(text: str, headings: Sequence[Heading]) -> list[tuple[int, int, str]]:
    """(start, end, what) of the document's blocks in order: 'heading', 'code' (a fenced block), 'table'
    or 'paragraph'. Paragraphs are cut at blank lines and around headings; fences are never cut."""
    fences = [m.span() for m in _FENCE.finditer(text)] if "```" in text else []
    marks = sorted([(s, e, "heading") for s, e, _ in headings] + [(s, e, "code") for s, e in fences])
    blocks: list[tuple[int, int, str]] = []
    position = 0
    for s, e, what in [*marks, (len(text), len(text), "")]:
        if s < position:  # a heading inside a fence is code
            continue
        for ps, pe in paragraph_spans(text, position, s):
            blocks.append((ps, pe, "table" if _TABLE_ROW.match(text, ps) else "paragraph"))
        if what and (span := trimmed(text, s, e)) is not None:
            blocks.append((*span, what))
        position = max(position, e)
    return blocks


def _prose_units(
    text: str, headings: Sequence[Heading], options: ChunkingOptions, count: Counter
) -> list[Unit]:
    """Headings, code blocks and tables whole; paragraphs as sentences and list items (or, for
    ``units="blocks"``, as list items, cut at sentences only when one is over the limit)."""
    units: list[Unit] = []
    for s, e, what in _blocks(text, headings):
        if what == "heading":
            units.append(Unit(s, e, True, heading=True))
        elif what in ("code", "table"):
            units.append(Unit(s, e, True))
        elif options.units == "blocks":
            items = block_spans(text, s, e)
            for (us, ue), size in zip(items, count([text[a:b] for a, b in items]), strict=True):
                if size <= options.budget:
                    units.append(Unit(us, ue, True, size))
                else:  # one block over the limit: its sentences, packed
                    units += [Unit(a, b, i == 0) for i, (a, b) in enumerate(sentence_spans(text, us, ue))]
        else:
            units += [Unit(us, ue, i == 0) for i, (us, ue) in enumerate(sentence_spans(text, s, e))]
    return units


def chunk_prose(
    text: str, options: ChunkingOptions, count: Counter, headings: Sequence[Heading] = ()
) -> list[Span]:
    units = _prose_units(text, headings, options, count)
    return pack(expand(text, units, options, count), options, overlap=options.units != "blocks")


def chunk_post(
    text: str, options: ChunkingOptions, count: Counter, headings: Sequence[Heading] = ()
) -> list[Span]:
    whole = trimmed(text, 0, len(text))
    if whole is None:
        return []
    if count([text[whole[0] : whole[1]]])[0] <= options.budget:
        return [whole]
    return chunk_prose(text, options, count, headings)


def _code_sections(text: str) -> list[Span]:
    """File sections of a repository document (each from its ``␞ path`` line); the whole text if none."""
    starts = [m.start() for m in _FILE.finditer(text)]
    if not starts or starts[0] > 0:
        starts.insert(0, 0)
    return list(zip(starts, [*starts[1:], len(text)], strict=True))


def _definition_starts(text: str, start: int, end: int) -> list[int]:
    """Where top-level definitions start in ``text[start:end]``, a decorator with what it decorates."""
    starts: list[int] = []
    previous = -1  # the line of the previous match
    for match in _TOP_LEVEL.finditer(text, start, end):
        line_above = text.rfind("\n", 0, max(0, match.start() - 1)) + 1
        if not (line_above == previous and text.startswith("@", previous)):  # else: decorated, goes with it
            starts.append(match.start())
        previous = match.start()
    return starts


def chunk_code(
    text: str, options: ChunkingOptions, count: Counter, headings: Sequence[Heading] = ()
) -> list[Span]:
    code = ChunkingOptions(
        options.max_tokens, options.budget, 0, options.special_tokens, options.context_tokens
    )
    chunks: list[Span] = []
    for section_start, section_end in _code_sections(text):
        header = _FILE.match(text, section_start)
        body_start = header.end() if header else section_start
        starts = [s for s in _definition_starts(text, body_start, section_end) if s > section_start]
        units: list[Unit] = []
        for s, e in zip([section_start, *starts], [*starts, section_end], strict=True):
            span = trimmed(text, s, e)
            if span is not None:
                units.append(Unit(*span, True))
        chunks += pack(expand(text, units, code, count, indented=True), code, overlap=False)
    return chunks


CHUNKERS: dict[str, Callable[[str, ChunkingOptions, Counter, Sequence[Heading]], list[Span]]] = {
    "prose": chunk_prose,
    "post": chunk_post,
    "code": chunk_code,
}
"""The chunkers, by the name a kind's ``chunking`` gives (``llm_twin_assets.kinds``)."""


def heading_path(text: str, kind: str, headings: Sequence[Heading], start: int, end: int) -> tuple[str, ...]:
    """The headings above ``text[start:end]``, outermost first: those before it, and those it opens
    with; for code, the path of the file it is in."""
    if is_code(kind):
        files = [m for m in _FILE.finditer(text, 0, end) if m.start() <= start]
        return (files[-1][0].removeprefix("\u241e ").strip(),) if files else ()
    inside = start
    for s, e, _ in headings:  # the headings a chunk starts with count as above it
        if s == inside and e <= end:
            following = NON_SPACE.search(text, e, end)
            inside = following.start() if following else end
    stack: list[tuple[int, str]] = []
    for s, e, level in headings:
        if s >= inside:
            break
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text[s:e].strip()))
    return tuple(name for _, name in stack)


def context_of(title: str, path: Sequence[str], limit: int, count: Counter) -> str:
    """The title and heading path as embedded above a chunk, within ``limit`` tokens: the outer headings
    are dropped first, then words from the end."""
    parts = [p for p in dict.fromkeys([title.strip(), *path]) if p]
    if not parts or limit <= 0:
        return ""
    while True:
        context = " › ".join(parts)
        if count([context])[0] <= limit:
            return context
        if len(parts) > 2:
            del parts[1]
            continue
        words = context.split()
        while len(words) > 1 and count([" ".join(words)])[0] > limit:
            words = words[: max(1, len(words) * 3 // 4)]
        return " ".join(words) if count([" ".join(words)])[0] <= limit else ""


def chunk_document(
    document_id: str,
    kind: str,
    text: str,
    options: ChunkingOptions,
    count: Counter,
    *,
    title: str = "",
    headings: Sequence[Heading] = (),
) -> list[Chunk]:
    """The document's chunks, each a span of ``text``, re-counted and guaranteed within the limit, each
    with its heading path and (``options.context_tokens``) the context embedded above it."""
    headings = sorted(h for h in headings if 0 <= h[0] < h[1] <= len(text))
    spans = CHUNKERS[document_kind(kind).chunking](text, options, count, headings)
    ids_of = count.ids if isinstance(count, TokenCounter) and count.additive else None
    pieces = [text[s:e] for s, e in spans]
    piece_ids = ids_of(pieces) if ids_of else [None] * len(pieces)
    sizes = [len(ids) for ids in piece_ids] if ids_of else count(pieces)  # type: ignore[arg-type]
    final: list[tuple[Unit, list[int] | None]] = []
    for (start, end), size, ids in zip(spans, sizes, piece_ids, strict=True):
        if size <= options.budget:
            final.append((Unit(start, end, False, size), ids))
        else:  # units packed together can count a token more at a seam: re-cut the rare chunk over
            units = split_long(text, start, end, options.budget, count, indented=is_code(kind))
            unit_ids = ids_of([text[u.start : u.end] for u in units]) if ids_of else [None] * len(units)
            final += zip(units, unit_ids, strict=True)
    contexts: dict[tuple[str, ...], tuple[str, list[int]]] = {}
    chunks = []
    for i, (unit, ids) in enumerate(final):
        piece = text[unit.start : unit.end]
        digest = content_hash(piece)
        path = heading_path(text, kind, headings, unit.start, unit.end)
        if path not in contexts:
            context = context_of(title, path, options.context_tokens, count) if options.context_tokens else ""
            contexts[path] = (context, ids_of([context])[0] if ids_of and context else [])
        context, context_ids = contexts[path]
        chunks.append(
            Chunk(
                id=chunk_id(document_id, i, digest),
                document_id=document_id,
                ordinal=i,
                text=piece,
                n_tokens=unit.size + options.special_tokens,
                content_hash=digest,
                start=unit.start,
                end=unit.end,
                heading_path=path,
                context=context,
                token_ids=count.embedded_ids(context_ids, ids)
                if ids is not None and isinstance(count, TokenCounter)
                else None,
            )
        )
    return chunks
