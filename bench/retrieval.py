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

With ``--scale [N]`` it then measures query latency at N chunks (default 100,000): the structured pages'
chunks, text and vectors (plus a little noise, so every vector differs) copied over 20 authors (one with
30% of the rows, the others 3.7% each), the 110 questions asked with their vectors computed once (the
figure is the search alone), vector-only as before vs the default hybrid, unfiltered and per author.

Run: ``.venv/bin/python bench/retrieval.py [--home DIR] [--scale [N]] [--skip-quality]`` (a kept home
skips the embedding next time).
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


def scale(rows: int, keep: Path | None = None) -> None:
    """Latency of vector-only vs hybrid search at ``rows`` chunks: a fresh store filled from the pages
    (``keep``: a data home kept between runs, filled once)."""
    import shutil

    import numpy as np

    from llm_twin_assets.records import content_hash, document_id
    from llm_twin_assets.retrieval import retriever
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import embedded
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.upsert import bulk_upsert
    from llm_twin_assets.store.vectors import ensure_author_indexes

    source = retriever()
    with source.database.connect() as conn:
        chunks = conn.execute(
            "SELECT content, context, kind, embedding FROM chunks WHERE author = 'bench-pages-struct' ORDER BY id"
        ).fetchall()
    questions = [str(q["question"]) for q in yaml.safe_load(QUESTIONS.read_text())]
    vectors = source.embedder.encode(questions, normalize_embeddings=True, convert_to_numpy=True)
    home = keep or Path(tempfile.mkdtemp(prefix="llm-twin-bench-scale-"))
    try:
        database = open_database(get_settings(home=home))
        with database.connect() as conn:
            filled = conn.execute("SELECT count(*) FROM chunks").fetchone()
        if filled and filled[0] >= 0.99 * rows:
            measure_scale(database, source.embedder, questions, vectors)
            return
        rng = np.random.default_rng(0)
        authors = ["a00"] * int(0.3 * rows)
        authors += [f"a{i:02d}" for i in range(1, 20) for _ in range(int(0.7 * rows / 19))]
        base = np.stack([np.asarray(c[3].to_numpy(), dtype=np.float32) for c in chunks])
        start = time.perf_counter()
        with database.connect() as conn:
            conn.execute("DROP INDEX chunks_embedding_hnsw")  # built once, after the load
            for slug in sorted(set(authors)):
                doc = document_id(slug, "bench")
                conn.execute("INSERT INTO authors (slug, name) VALUES (%s, %s)", (slug, slug))
                for table in ("raw_documents", "cleaned_documents"):
                    extra = ", raw_content_hash, n_chars" if table == "cleaned_documents" else ""
                    values = ", %s, 1" if table == "cleaned_documents" else ""
                    conn.execute(
                        f"INSERT INTO {table} (id, author, url, kind, content, content_hash{extra})"
                        f" VALUES (%s, %s, %s, 'article', 'x', %s{values})",
                        (
                            doc,
                            slug,
                            f"bench:{slug}",
                            content_hash("x"),
                            *([content_hash("x")] if extra else []),
                        ),
                    )
            out = []
            for i, slug in enumerate(authors):
                content, context, kind, _ = chunks[i % len(chunks)]
                noise = rng.standard_normal(base.shape[1]).astype(np.float32) * 0.015
                vector = base[i % len(chunks)] + noise
                text = f"{content} ({i})"
                out.append(
                    (
                        f"c{i}",
                        document_id(slug, "bench"),
                        slug,
                        kind,
                        i,
                        text,
                        content_hash(text),
                        1,
                        context,
                        vector / np.linalg.norm(vector),
                        "bench",
                    )
                )
            columns = ("id", "document_id", "author", "kind", "ordinal", "content", "content_hash",
                       "n_tokens", "context", "embedding", "embedding_model")  # fmt: skip
            bulk_upsert(conn, "chunks", columns, out)
        with database.connect(autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                "CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw ((embedding::halfvec(384))"
                " halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)"
            )
            conn.execute("ANALYZE chunks")
            ensure_author_indexes(conn)
        print(
            f"# scale: {len(authors):,} chunks loaded and indexed in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        measure_scale(database, source.embedder, questions, vectors)
    finally:
        if keep is None:
            embedded.stop(home / "pgdata")
            shutil.rmtree(home, ignore_errors=True)


def measure_scale(database, embedder, questions: list[str], vectors) -> None:  # type: ignore[no-untyped-def]
    """p50/p95 of each search, with its query vector given (the search alone), per filter."""
    from llm_twin_assets.retrieval import Retriever, SearchOptions

    with database.connect() as conn:
        rows = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
    search = Retriever(database, embedder)
    report = Report("retrieval_scale")
    vector_only = SearchOptions(mode="vector", same_document_decay=1.0, self_query=False)
    variants = (  # name, options, whether each query opens its own connection (as search did before)
        ("before: vector only, a connection per query", vector_only, True),
        ("vector only", vector_only, False),
        ("hybrid (default)", SearchOptions(self_query=False), False),
        ("hybrid, every term finds chunks", SearchOptions(self_query=False, max_term_rows=10**9), False),
    )
    for label, author in (("unfiltered", None), ("author with 30%", "a00"), ("author with 3.7%", "a05")):
        for name, options, reconnect in variants:
            samples = []
            for i, (q, v) in enumerate(
                zip([*questions[:10], *questions], [*vectors[:10], *vectors], strict=True)
            ):
                if reconnect and getattr(search._local, "conn", None) is not None:
                    search._local.conn.close()
                began = time.perf_counter()
                search.search(q, author=author, k=10, options=options, vector=v)
                if i >= 10:  # the first ten warm up
                    samples.append(time.perf_counter() - began)
            samples.sort()
            report.add(
                rows=rows,
                filter=label,
                search=name,
                p50_ms=round(1000 * samples[len(samples) // 2], 2),
                p95_ms=round(1000 * samples[int(0.95 * (len(samples) - 1))], 2),
            )
    report.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, help="a data home to keep between runs (default: a temporary one)"
    )
    parser.add_argument(
        "--scale", type=int, nargs="?", const=100_000, help="also measure latency at N chunks"
    )
    parser.add_argument("--skip-quality", action="store_true", help="with --scale: the latency part only")
    parser.add_argument("--scale-home", type=Path, help="with --scale: a data home for the big store, kept")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="llm-twin-bench-retrieval-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        if args.skip_quality:
            os.environ["LLM_TWIN_HOME"] = str(home.absolute())
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ["LLM_TWIN_LOCAL_ROOTS"] = ""
            load(home.absolute())
        else:
            run(home.absolute())
        if args.scale:
            scale(args.scale, args.scale_home.absolute() if args.scale_home else None)
    finally:
        if args.home is None:
            from llm_twin_assets.store import embedded

            embedded.stop(home / "pgdata")


if __name__ == "__main__":
    main()
