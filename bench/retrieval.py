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
- unit@5: the unit marked in one of the first five results (``SearchHit.unit``) holds the answering
  passage (most of it), on its page: the item that answers, shown as the match;
- ms: mean search latency (each question is embedded once per layout, not counted here).

A third layout, ``lists`` (``retrieval_corpus.list_pages``), is the changelogs' one-line items on pages of
25 under one heading, asked ``bench/retrieval_list_questions.yaml``: questions answered by a single item,
written to paraphrase it (at most 30% of its content words; a test checks). The variants marked
``units:`` rank the chunks' retrieval units too (``SearchOptions.units``, the default); the others are
the search before units, chunks alone.

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
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from harness import Report
from retrieval_corpus import corpus, list_pages

QUESTIONS = Path(__file__).resolve().parent / "retrieval_questions.yaml"
CHUNKING = {"plain": {"use_headings": False, "context_tokens": 0}, "struct": {}}
LAYOUTS = ("documents", "pages", "lists")
LIST_QUESTIONS = QUESTIONS.with_name("retrieval_list_questions.yaml")
"""The ``lists`` layout's questions: each answered by one item of a long list, and paraphrasing it."""
_SECTION = re.compile(r"(?m)^## ")


@dataclass(frozen=True)
class Variant:
    name: str
    chunking: str  # a key of CHUNKING
    options: dict[str, object]


NONE = {"same_document_decay": 1.0, "max_per_document": None}  # no diversity
OLD_FUSION = {"text_weight": 1.0, "rrf_k": 60, "min_text_share": 0.0}  # plain RRF
NO_UNITS = {"units": False}  # chunks alone: every variant measured before retrieval units
VARIANTS = [
    Variant("before: vector only, plain chunks", "plain", {"mode": "vector", **NONE, **NO_UNITS}),
    Variant("plain chunks, hybrid", "plain", {"mode": "hybrid", **OLD_FUSION, **NONE, **NO_UNITS}),
    Variant("structured, vector only", "struct", {"mode": "vector", **NONE, **NO_UNITS}),
    Variant("structured, text only", "struct", {"mode": "text", "min_text_share": 0.0, **NONE, **NO_UNITS}),
    Variant("structured, hybrid", "struct", {"mode": "hybrid", **OLD_FUSION, **NONE, **NO_UNITS}),
    Variant("  + text at 1/2, rrf_k 20", "struct", {"min_text_share": 0.0, **NONE, **NO_UNITS}),
    Variant(
        "  + at most 1 per document",
        "struct",
        {"min_text_share": 0.0, **NONE, "max_per_document": 1, **NO_UNITS},
    ),
    Variant(
        "  + at most 2 per document",
        "struct",
        {"min_text_share": 0.0, **NONE, "max_per_document": 2, **NO_UNITS},
    ),
    Variant(
        "  + at most 3 per document",
        "struct",
        {"min_text_share": 0.0, **NONE, "max_per_document": 3, **NO_UNITS},
    ),
    Variant(
        "  + same-document decay 0.6",
        "struct",
        {"min_text_share": 0.0, "same_document_decay": 0.6, **NO_UNITS},
    ),
    Variant("  + same-document decay 0.8", "struct", {"min_text_share": 0.0, **NO_UNITS}),
    Variant("  + decay 0.8, rrf_k 60", "struct", {"min_text_share": 0.0, "rrf_k": 60, **NO_UNITS}),
    Variant("  + decay 0.8, 20 candidates", "struct", {"min_text_share": 0.0, "candidates": 20, **NO_UNITS}),
    Variant("  + decay 0.8, text share >= 0.2", "struct", {"min_text_share": 0.2, **NO_UNITS}),
    Variant("  + decay 0.8, text share >= 0.5", "struct", {"min_text_share": 0.5, **NO_UNITS}),
    Variant("default options before units (text share >= 0.35)", "struct", {**NO_UNITS}),
    # Retrieval units (small-to-big): items, rows and sentence groups ranked for their chunk.
    Variant("units: plain chunks, vector only", "plain", {"mode": "vector", **NONE}),
    Variant("units: structured, vector only", "struct", {"mode": "vector", **NONE}),
    Variant("units: hybrid, unit ranks in its own ranking", "struct", {"unit_fusion": "rank"}),
    Variant("units: hybrid, own ranking at 1/2", "struct", {"unit_fusion": "rank", "unit_weight": 0.5}),
    Variant("units: hybrid, 100 unit candidates", "struct", {"unit_candidates": 100}),
    Variant("default options (units: a chunk at its best unit)", "struct", {}),
]


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def layout(name: str) -> dict[str, str]:
    """file name -> Markdown text of each page of the layout."""
    if name == "lists":
        return list_pages()
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
    list_questions = yaml.safe_load(LIST_QUESTIONS.read_text())
    load(home)
    search = retriever()
    report = Report("retrieval")
    all_questions = questions
    report.note("questions", len(questions))
    report.note("literal_questions", sum(bool(q.get("literal")) for q in questions))
    report.note("list_questions", len(list_questions))
    for name in LAYOUTS:
        questions = list_questions if name == "lists" else all_questions
        spans = answer_spans(search.database, questions, f"bench-{name}-struct")
        report.note(f"{name}: pages that answer a question", len({url for url, _, _ in spans}))
        # Each question embedded once (as Retriever.embed does): the figures are the search alone.
        began = time.perf_counter()
        vectors = search.embedder.encode(
            [str(q["question"]) for q in questions], normalize_embeddings=True, convert_to_numpy=True
        )
        report.note(
            f"{name}: ms to embed a question", round(1000 * (time.perf_counter() - began) / len(questions), 1)
        )
        for variant in VARIANTS:
            author = f"bench-{name}-{variant.chunking}"
            options = SearchOptions(**variant.options)  # type: ignore[arg-type]
            first: list[int | None] = []
            passage = 0
            literal_hits = 0
            marked = 0
            started = time.perf_counter()
            for q, vector, (url, start, end) in zip(questions, vectors, spans, strict=True):
                hits = search.search(str(q["question"]), author=author, k=10, options=options, vector=vector)
                ranks = [i for i, h in enumerate(hits, start=1) if h.document_url == url]
                first.append(ranks[0] if ranks else None)
                held = any(
                    h.document_url == url and _covers(h, start, end, search.database) for h in hits[:5]
                )
                passage += held
                literal_hits += held and bool(q.get("literal"))
                marked += any(
                    h.document_url == url
                    and h.unit is not None
                    and min(end, h.unit.end) - max(start, h.unit.start) >= 0.6 * (end - start)
                    for h in hits[:5]
                )
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
                    "unit@5": round(marked / n, 3),
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


def cost() -> None:
    """What units cost to write and store, per layout (the structured authors): chunks and units, the
    encoder's seconds for each (the production encoder, on the texts the asset embeds), so the write
    throughput of a document with and without its units; and the tables' sizes with their indexes."""
    from llm_twin_assets.defs.resources import ModelsResource
    from llm_twin_assets.retrieval import retriever
    from llm_twin_assets.store.units import units_needing_embeddings

    database = retriever().database
    encoder = ModelsResource(device="cpu").encoder()
    report = Report("retrieval_units_cost")
    for name in LAYOUTS:
        author = f"bench-{name}-struct"
        with database.connect() as conn:
            texts = [
                r[0]
                for r in conn.execute(
                    "SELECT CASE WHEN context = '' THEN content ELSE context || chr(10) || content END"
                    " FROM chunks WHERE author = %s ORDER BY id",
                    (author,),
                ).fetchall()
            ]
            units = [t for _, t in units_needing_embeddings(conn, author, "none: every unit")]
            documents = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM chunk_units u"
                " WHERE u.chunk_id = c.id)) FROM chunks c WHERE author = %s",
                (author,),
            ).fetchone()
            pages = conn.execute(
                "SELECT count(*) FROM cleaned_documents WHERE author = %s", (author,)
            ).fetchone()
        encoder.encode(texts[:32])  # warm
        began = time.perf_counter()
        encoder.encode(texts)
        chunk_s = time.perf_counter() - began
        began = time.perf_counter()
        encoder.encode(units)
        unit_s = time.perf_counter() - began
        n_pages = int(pages[0]) if pages else 0
        report.add(
            layout=name,
            pages=n_pages,
            chunks=len(texts),
            chunks_with_units=int(documents[1]) if documents else 0,
            units=len(units),
            vectors_per_page=f"{len(texts) / n_pages:.1f} -> {(len(texts) + len(units)) / n_pages:.1f}",
            encode_chunks_s=round(chunk_s, 1),
            encode_units_s=round(unit_s, 1),
            pages_per_s=f"{n_pages / chunk_s:.1f} -> {n_pages / (chunk_s + unit_s):.1f}",
        )
    with database.connect() as conn:
        for table in ("chunks", "chunk_units"):
            row = conn.execute(
                f"SELECT count(*), pg_total_relation_size('{table}'), pg_indexes_size('{table}'),"
                f" pg_relation_size('{table}_embedding_hnsw') FROM {table}"
            ).fetchone()
            report.note(
                f"{table}: rows, MB with indexes (indexes, HNSW)",
                f"{row[0]:,}, {row[1] / 2**20:.1f} ({row[2] / 2**20:.1f}, {row[3] / 2**20:.1f})",
            )
    report.save()


def scale(rows: int, keep: Path | None = None) -> None:
    """Latency of vector-only vs hybrid search at ``rows`` chunks: a fresh store filled from the pages
    (``keep``: a data home kept between runs, filled once)."""
    import shutil

    import numpy as np

    from llm_twin_assets.records import content_hash, document_id
    from llm_twin_assets.retrieval import retriever
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import embedded
    from llm_twin_assets.store.author_indexes import ensure_author_indexes
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.upsert import bulk_upsert

    source = retriever()
    with source.database.connect() as conn:
        chunks = conn.execute(
            "SELECT content, context, kind, embedding, id FROM chunks WHERE author = 'bench-pages-struct' ORDER BY id"
        ).fetchall()
        source_units: dict[str, list[tuple[str, object]]] = {}
        for chunk_id, content, embedding in conn.execute(
            "SELECT chunk_id, content, embedding FROM chunk_units WHERE author = 'bench-pages-struct'"
            " ORDER BY chunk_id, ordinal"
        ).fetchall():
            source_units.setdefault(chunk_id, []).append((content, embedding))
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
            conn.execute("DROP INDEX chunk_units_embedding_hnsw")
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
            units = []
            for i, slug in enumerate(authors):
                content, context, kind, _, source_id = chunks[i % len(chunks)]
                for n, (unit_text, unit_vector) in enumerate(source_units.get(source_id, [])):
                    noisy = np.asarray(unit_vector.to_numpy(), dtype=np.float32)  # type: ignore[attr-defined]
                    noisy = noisy + rng.standard_normal(noisy.shape[0]).astype(np.float32) * 0.015
                    units.append(
                        (f"u{i}-{n}", f"c{i}", document_id(slug, "bench"), slug, kind, n, 0,
                         len(unit_text), unit_text, "x", noisy / np.linalg.norm(noisy), "bench")
                    )  # fmt: skip
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
            unit_columns = ("id", "chunk_id", "document_id", "author", "kind", "ordinal", "char_start",
                            "char_end", "content", "embedded_hash", "embedding", "embedding_model")  # fmt: skip
            bulk_upsert(conn, "chunk_units", unit_columns, units, compare=None)
        with database.connect(autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                "CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw ((embedding::halfvec(384))"
                " halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)"
            )
            conn.execute(
                "CREATE INDEX chunk_units_embedding_hnsw ON chunk_units USING hnsw ((embedding::halfvec(384))"
                " halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)"
            )
            conn.execute("ANALYZE chunks")
            conn.execute("ANALYZE chunk_units")
            ensure_author_indexes(conn)
            ensure_author_indexes(conn, table="chunk_units")
        print(
            f"# scale: {len(authors):,} chunks and {len(units):,} units loaded and indexed in"
            f" {time.perf_counter() - start:.0f} s",
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
        sizes = conn.execute(
            "SELECT count(*), pg_total_relation_size('chunks'), pg_indexes_size('chunks'),"
            " (SELECT count(*) FROM chunk_units), pg_total_relation_size('chunk_units'),"
            " pg_indexes_size('chunk_units') FROM chunks"
        ).fetchone()
    search = Retriever(database, embedder)
    report = Report("retrieval_scale")
    report.note("chunks", sizes[0])
    report.note("chunks: MB with indexes (indexes)", f"{sizes[1] / 2**20:.1f} ({sizes[2] / 2**20:.1f})")
    report.note("units", sizes[3])
    report.note("units: MB with indexes (indexes)", f"{sizes[4] / 2**20:.1f} ({sizes[5] / 2**20:.1f})")
    vector_only = SearchOptions(mode="vector", same_document_decay=1.0, self_query=False)
    variants = (  # name, options, whether each query opens its own connection (as search did before)
        ("vector only, chunks alone (before units)", replace(vector_only, units=False), False),
        ("vector only, with units", vector_only, False),
        (
            "hybrid, chunks alone (the default before units)",
            SearchOptions(self_query=False, units=False),
            False,
        ),
        ("hybrid, with units (default)", SearchOptions(self_query=False), False),
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
    parser.add_argument("--cost", action="store_true", help="also measure what units cost to write and store")
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
        if args.cost:
            cost()
        if args.scale:
            scale(args.scale, args.scale_home.absolute() if args.scale_home else None)
    finally:
        if args.home is None:
            from llm_twin_assets.store import embedded

            embedded.stop(home / "pgdata")


if __name__ == "__main__":
    main()
