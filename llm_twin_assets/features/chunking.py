"""Token-aware chunking with the embedding model's own tokenizer, per document kind.

No chunk is ever longer than the embedder reads (``max_tokens`` word-pieces, special tokens included),
so nothing is silently truncated at embedding time:

- articles: paragraphs and sentences packed up to ``target_tokens`` with ``overlap_tokens`` of the
  previous chunk's closing sentences repeated; a new paragraph is preferred as a break point.
- posts: whole when they fit, otherwise like articles.
- repositories: split on file sections (``␞ path`` lines, as the crawler writes them), then on
  top-level definitions, packed up to the limit; each chunk starts with its file's path.

Units longer than the limit are split on words (or characters, for a word that long), never cut by
token ids, so every chunk is the author's exact text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llm_twin_assets.records import Chunk, chunk_id, content_hash

_SENTENCE = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=\S)")
_FILE = re.compile(r"(?m)^\u241e (?P<path>[^\n]+)\n")
_TOP_LEVEL = re.compile(
    r"(?m)^(?=(?:async def |def |class |function |export |const |let |fn |pub |impl |struct |enum |trait |"
    r"func |type |interface |module |public |private |@))"
)

Counter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class ChunkingOptions:
    max_tokens: int = 256  # what the embedder reads, special tokens included
    target_tokens: int = 200
    overlap_tokens: int = 40
    special_tokens: int = 2  # [CLS] and [SEP]

    @property
    def budget(self) -> int:
        return self.max_tokens - self.special_tokens


def token_counter(tokenizer) -> Counter:  # type: ignore[no-untyped-def]
    """Counts word-pieces of many texts at once (without special tokens).

    Uses a private copy of the Rust tokenizer (batch encoding on all cores, no truncation or padding)
    when the tokenizer is a fast one; the Python-side ``tokenizer(...)`` otherwise."""
    rust = getattr(tokenizer, "_tokenizer", None)
    if rust is not None:
        from tokenizers import Tokenizer

        plain = Tokenizer.from_str(rust.to_str())
        plain.no_truncation()
        plain.no_padding()
        encode = getattr(plain, "encode_batch_fast", plain.encode_batch)

        def count_fast(texts: Sequence[str]) -> list[int]:
            return [len(e.ids) for e in encode(list(texts), add_special_tokens=False)] if texts else []

        return count_fast

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)[
            "input_ids"
        ]
        return [len(ids) for ids in encoded]

    return count


def _split_long(unit: str, budget: int, count: Counter) -> list[str]:
    """Pieces of ``unit`` within ``budget`` tokens, cut between words (characters for a giant word)."""
    words = unit.split(" ")
    sizes = count(words)
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word, size in zip(words, sizes, strict=True):
        if size > budget:  # one "word" longer than the limit: a URL, a hash, minified code
            if current:
                pieces.append(" ".join(current))
                current, used = [], 0
            step = max(1, len(word) * budget // (size + 1))
            pieces += [word[i : i + step] for i in range(0, len(word), step)]
            continue
        if used + size + (1 if current else 0) > budget and current:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += size
    if current:
        pieces.append(" ".join(current))
    return [p for p in pieces if p.strip()]


def _pack(
    units: list[tuple[str, bool]],
    options: ChunkingOptions,
    count: Counter,
    joiner: str = " ",
    overlap: bool = True,
) -> list[str]:
    """Greedy packing of (text, starts_paragraph) units into chunks of about target_tokens."""
    sizes = count([u for u, _ in units])
    expanded: list[tuple[str, bool, int]] = []
    for (unit, para), size in zip(units, sizes, strict=True):
        if size > options.budget:
            parts = _split_long(unit, options.budget, count)
            expanded += [
                (p, para and i == 0, n) for i, (p, n) in enumerate(zip(parts, count(parts), strict=True))
            ]
        else:
            expanded.append((unit, para, size))
    chunks: list[list[tuple[str, bool, int]]] = []
    current: list[tuple[str, bool, int]] = []
    used = 0
    for item in expanded:
        _, para, size = item
        full = used + size > options.target_tokens or used + size + len(current) > options.budget
        soft_break = para and used >= 0.6 * options.target_tokens
        if current and (full or soft_break):
            chunks.append(current)
            carried: list[tuple[str, bool, int]] = []
            if overlap and not para:  # repeat the closing sentences when a paragraph runs on
                carried_tokens = 0
                for previous in reversed(current):
                    if carried_tokens + previous[2] > options.overlap_tokens:
                        break
                    carried.insert(0, previous)
                    carried_tokens += previous[2]
            current, used = carried, sum(c[2] for c in carried)
        current.append(item)
        used += size
    if current:
        chunks.append(current)
    texts = []
    for chunk in chunks:
        parts = []
        for i, (text, para, _) in enumerate(chunk):
            parts.append(("\n\n" if para and i else (joiner if i else "")) + text)
        texts.append("".join(parts))
    return texts


def _prose_units(text: str) -> list[tuple[str, bool]]:
    units: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n{2,}", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        for i, sentence in enumerate(s for s in _SENTENCE.split(paragraph) if s.strip()):
            units.append((sentence.strip(), i == 0))
    return units


def chunk_prose(text: str, options: ChunkingOptions, count: Counter) -> list[str]:
    return _pack(_prose_units(text), options, count)


def chunk_post(text: str, options: ChunkingOptions, count: Counter) -> list[str]:
    if count([text])[0] <= options.budget:
        return [text.strip()]
    return chunk_prose(text, options, count)


def _code_sections(text: str) -> list[tuple[str, str]]:
    """(path, code) per file section of a repository document; the whole text if it has none."""
    matches = list(_FILE.finditer(text))
    if not matches:
        return [("", text)]
    sections = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        body = text[match.end() : end].rstrip()
        sections.append((match.group("path").strip(), body))
    return sections


def chunk_code(text: str, options: ChunkingOptions, count: Counter) -> list[str]:
    chunks: list[str] = []
    for path, code in _code_sections(text):
        header = f"{path}\n" if path else ""
        header_tokens = count([header])[0] if header else 0
        local = ChunkingOptions(
            max_tokens=options.max_tokens - header_tokens,
            target_tokens=options.budget - header_tokens,
            overlap_tokens=0,
            special_tokens=options.special_tokens,
        )
        blocks = [b.strip("\n") for b in _TOP_LEVEL.split(code) if b.strip()]
        units: list[tuple[str, bool]] = []
        for block in blocks:
            if count([block])[0] <= local.budget:
                units.append((block, True))
            else:  # a long definition: its lines, then words if a line is too long
                units += [(line, False) for line in block.split("\n") if line.strip()]
        for packed in _pack(units, local, count, joiner="\n", overlap=False):
            chunks.append(header + packed.replace("\n\n\n", "\n\n"))
    return chunks


CHUNKERS = {"article": chunk_prose, "post": chunk_post, "repository": chunk_code}


def chunk_document(
    document_id: str, kind: str, text: str, options: ChunkingOptions, count: Counter
) -> list[Chunk]:
    """The document's chunks, each re-counted and guaranteed within the limit."""
    pieces = [p for p in CHUNKERS[kind](text, options, count) if p.strip()]
    final: list[str] = []
    sizes: list[int] = []
    for piece, size in zip(pieces, count(pieces), strict=True):
        if size <= options.budget:
            final.append(piece)
            sizes.append(size)
        else:  # joining units can add a token or two at a seam; re-split the rare chunk over the line
            parts = _split_long(piece, options.budget, count)
            final += parts
            sizes += count(parts)
    return [
        Chunk(
            id=chunk_id(document_id, i, content_hash(t)),
            document_id=document_id,
            ordinal=i,
            text=t,
            n_tokens=n + options.special_tokens,
            content_hash=content_hash(t),
        )
        for i, (t, n) in enumerate(zip(final, sizes, strict=True))
    ]
