"""Retrieval quality on a labelled corpus: which passage answers a reader's question?

The corpus (``bench/retrieval_corpus.py``: long Markdown READMEs and changelogs shipped inside installed
packages) is laid out two ways: ``documents`` (16 long pages) and ``pages`` (each document cut at its
``##`` sections into pages of its own: ~300 pages, ~200 of them release notes that look alike, the way a
blog of changelog posts does). Each layout goes through the real pipeline as one author's drafts
folder — ``raw_documents`` -> ``cleaned_documents`` -> ``chunks`` -> ``chunk_embeddings`` — twice: once
chunked as before this change (no heading structure, nothing embedded above a chunk: ``...-plain``) and
once with the structure-aware chunker and the title and heading path embedded above each chunk
(``...-struct``). Then every question of ``bench/retrieval_questions.yaml`` (labelled with the page
whose text holds its answer) is asked through ``retrieval.search`` with each variant of the search
options, side by side:

- hit@1, hit@5: the answering document is the first / among the first five results;
- MRR: mean reciprocal rank of the first result from the answering document (over ten results);
- passage@5: one of the first five chunks holds the answering passage (its labelled quote);
- ms: mean query latency (embedding the query included).

Run: ``.venv/bin/python bench/retrieval.py [--home DIR]`` (a kept home skips the embedding next time).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from harness import Report
from retrieval_corpus import corpus

QUESTIONS = Path(__file__).resolve().parent / "retrieval_questions.yaml"
CHUNKING = {"plain": {"use_headings": False, "context_tokens": 0}, "struct": {}}
LAYOUTS = ("documents", "pages")
_SECTION = re.compile(r"(?m)^## ")


@dataclass(frozen=True)
class Variant:
    name: str
    chunking: str  # a key of CHUNKING
    options: dict[str, object]


NONE = {"same_document_decay": 1.0, "max_per_document": None}  # no diversity
OLD_FUSION = {"text_weight": 1.0, "rrf_k": 60, "min_text_share": 0.0}  # plain RRF
VARIANTS = [
    Variant("before: vector only, plain chunks", "plain", {"mode": "vector", **NONE}),
    Variant("plain chunks, hybrid", "plain", {"mode": "hybrid", **OLD_FUSION, **NONE}),
    Variant("structured, vector only", "struct", {"mode": "vector", **NONE}),
    Variant("structured, text only", "struct", {"mode": "text", "min_text_share": 0.0, **NONE}),
    Variant("structured, hybrid", "struct", {"mode": "hybrid", **OLD_FUSION, **NONE}),
    Variant("  + text at 1/2, rrf_k 20", "struct", {"min_text_share": 0.0, **NONE}),
    Variant("  + at most 1 per document", "struct", {"min_text_share": 0.0, **NONE, "max_per_document": 1}),
    Variant("  + at most 2 per document", "struct", {"min_text_share": 0.0, **NONE, "max_per_document": 2}),
    Variant("  + at most 3 per document", "struct", {"min_text_share": 0.0, **NONE, "max_per_document": 3}),
    Variant("  + same-document decay 0.6", "struct", {"min_text_share": 0.0, "same_document_decay": 0.6}),
    Variant("  + same-document decay 0.8", "struct", {"min_text_share": 0.0}),
    Variant("  + decay 0.8, rrf_k 60", "struct", {"min_text_share": 0.0, "rrf_k": 60}),
    Variant("  + decay 0.8, 20 candidates", "struct", {"min_text_share": 0.0, "candidates": 20}),
    Variant("  + decay 0.8, text share >= 0.2", "struct", {"min_text_share": 0.2}),
    Variant("  + decay 0.8, text share >= 0.5", "struct", {"min_text_share": 0.5}),
    Variant("default options (text share >= 0.35)", "struct", {}),
]


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def layout(name: str) -> dict[str, str]:
    """file name -> Markdown text of each page of the layout."""
    pages: dict[str, str] = {}
    for document in corpus():
        if name == "documents":
            pages[f"{document.id}.md"] = document.text
            continue
        starts = [0, *(m.start() for m in _SECTION.finditer(document.text)), len(document.text)]
        for n, (start, end) in enumerate(itertools.pairwise(starts)):
            section = document.text[start:end].strip()
            if section:
                heading = section.splitlines()[0].lstrip("# ").strip() if n else ""
                title = f"{document.title}: {heading}" if heading else document.title
                pages[f"{document.id}-{n:03d}.md"] = f"# {title}\n\n{section}\n"
    return pages


def load(home: Path) -> dict[str, str]:
    """Write each layout as a drafts folder, materialize the feature assets for its two authors;
    page url -> file name."""
    import dagster as dg

    from llm_twin_assets.definitions import defs

    authors = home / "authors"
    urls = {}
    for name in LAYOUTS:
        drafts = authors / f"bench-{name}"
        drafts.mkdir(parents=True, exist_ok=True)
        for file, text in layout(name).items():
            path = drafts / file
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
            urls[path.resolve().as_uri()] = file
        for chunking in CHUNKING:
            (authors / f"bench-{name}-{chunking}.yaml").write_text(
                f"name: bench {name} {chunking}\nlinks:\n  - ./bench-{name}\n"
            )
    os.environ["LLM_TWIN_AUTHORS_DIR"] = str(authors)
    slugs = {f"bench-{name}-{chunking}": config for name in LAYOUTS for chunking, config in CHUNKING.items()}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("authors", list(slugs))
        for slug, chunking_config in slugs.items():
            start = time.perf_counter()
            result = dg.materialize(
                [*defs.assets, *(defs.asset_checks or [])],  # type: ignore[list-item]
                selection=dg.AssetSelection.groups("ingest", "features"),
                partition_key=slug,
                instance=instance,
                resources=defs.resources,
                run_config={
                    "ops": {
                        "raw_documents": {"config": {"min_delay_s": 0.0}},
                        "chunks": {"config": chunking_config},
                    },
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                },
                raise_on_error=True,
            )
            made = next(iter(result.asset_materializations_for_node("chunks"))).metadata
            print(
                f"# {slug}: features in {time.perf_counter() - start:.1f} s, {made['chunks'].value} chunks",
                flush=True,
            )
    return urls


def answer_spans(database, questions: list[dict[str, object]], author: str) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    """Each question's answering passage: (url of the page whose cleaned text holds it, start, end)."""
    with database.connect() as conn:
        texts = dict(
            conn.execute("SELECT url, content FROM cleaned_documents WHERE author = %s", (author,)).fetchall()
        )
    spans = []
    for q in questions:
        pattern = re.compile(r"\s+".join(re.escape(w) for w in str(q["answer"]).split()))
        found = [
            (url, m)
            for url, text in texts.items()
            if str(q["document"]) in url
            for m in [pattern.search(text)]
            if m
        ]
        if len(found) != 1:
            raise SystemExit(f"the answer of {q['question']!r} is on {len(found)} pages of {author}, not one")
        url, match = found[0]
        spans.append((url, match.start(), match.end()))
    return spans


def run(home: Path) -> None:
    os.environ["LLM_TWIN_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["LLM_TWIN_LOCAL_ROOTS"] = ""
    from llm_twin_assets.retrieval import SearchOptions, retriever

    questions = yaml.safe_load(QUESTIONS.read_text())
    load(home)
    search = retriever()
    report = Report("retrieval")
    report.note("questions", len(questions))
    report.note("literal_questions", sum(bool(q.get("literal")) for q in questions))
    for name in LAYOUTS:
        spans = answer_spans(search.database, questions, f"bench-{name}-struct")
        report.note(f"{name}: pages that answer a question", len({url for url, _, _ in spans}))
        for variant in VARIANTS:
            author = f"bench-{name}-{variant.chunking}"
            options = SearchOptions(**variant.options)  # type: ignore[arg-type]
            first: list[int | None] = []
            passage = 0
            literal_hits = 0
            started = time.perf_counter()
            for q, (url, start, end) in zip(questions, spans, strict=True):
                hits = search.search(str(q["question"]), author=author, k=10, options=options)
                ranks = [i for i, h in enumerate(hits, start=1) if h.document_url == url]
                first.append(ranks[0] if ranks else None)
                held = any(
                    h.document_url == url and _covers(h, start, end, search.database) for h in hits[:5]
                )
                passage += held
                literal_hits += held and bool(q.get("literal"))
            seconds = time.perf_counter() - started
            n = len(questions)
            report.add(
                layout=name,
                variant=variant.name,
                **{
                    "hit@1": round(sum(r == 1 for r in first) / n, 3),
                    "hit@5": round(sum(r is not None and r <= 5 for r in first) / n, 3),
                    "MRR": round(sum(1 / r for r in first if r) / n, 3),
                    "passage@5": round(passage / n, 3),
                    "literal passage@5": round(
                        literal_hits / max(1, sum(bool(q.get("literal")) for q in questions)), 3
                    ),
                    "ms": round(1000 * seconds / n, 1),
                },
            )
    report.save()


_SPANS: dict[str, tuple[int, int]] = {}


def _covers(hit, start: int, end: int, database) -> bool:  # type: ignore[no-untyped-def]
    """Whether the chunk holds most (60%) of the answering passage."""
    if hit.chunk_id not in _SPANS:
        with database.connect() as conn:
            row = conn.execute(
                "SELECT char_start, char_end FROM chunks WHERE id = %s", (hit.chunk_id,)
            ).fetchone()
        _SPANS[hit.chunk_id] = (int(row[0]), int(row[1]))
    chunk_start, chunk_end = _SPANS[hit.chunk_id]
    overlap = min(end, chunk_end) - max(start, chunk_start)
    return overlap >= 0.6 * (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, help="a data home to keep between runs (default: a temporary one)"
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="llm-twin-bench-retrieval-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        run(home.absolute())
    finally:
        if args.home is None:
            from llm_twin_assets.store import embedded

            embedded.stop(home / "pgdata")


if __name__ == "__main__":
    main()
