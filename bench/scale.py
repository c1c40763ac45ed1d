"""The feature pipeline and search at scale: synthetic authors through cleaning, chunking, embedding and
search on the embedded PostgreSQL + pgvector and the CPU, as the data grows 1x -> 4x -> 16x.

Data: ``--authors`` (100) synthetic authors, ``--docs`` (200) documents each at 1x: 70% articles of
3-8 paragraphs, 25% posts, 5% code repositories, written from two of six topics per author (the
generator of ``bench/features.py``). The store grows by increments (1x, then 3x more to reach 4x, then
12x more to reach 16x), and each increment goes through the calls the feature assets make, per author
as their partitions do: ``raw_needing_cleaning`` -> ``clean_frame`` -> ``write_cleaned``;
``documents_needing_chunks`` -> ``chunk_documents`` -> ``replace_chunks``; ``chunks_needing_embeddings``
-> the encoder -> ``write_embeddings`` (the HNSW index maintained on insert, as in production).

Per increment: throughput of each stage and seconds per 1,000 documents (how cost grows with data);
chunking on one process and on every core (the same chunks, checked); the encoder on a
sample of the new chunks (``--encode-sample``) with the chunker's token ids reused and with tokenizing;
then, on the whole store, search latency (p50/p95, one client) and recall@10 of the HNSW path of
``nearest()`` against exact search, unfiltered and filtered by author.

Vectors: embedding every chunk with MiniLM on 2 CPU cores (~150 chunks/s) would take hours at 16x, so
by default the stored vectors follow ``bench/vector_search.py``'s documented distribution built on real
MiniLM embeddings (each chunk: ``normalize(0.8a + 0.5b + 0.35n)`` of two embedded sentences of its
author's topics and noise), and the real encoder's throughput is measured on the sample.
``--real-vectors`` embeds every chunk with the real encoder instead (a GPU machine, or patience).

Run: ``make bench-scale`` (``--docs 25``: 2,500 to 40,000 documents, ~15 min on 2 cores), or
``python bench/scale.py`` for the full 20,000 to 320,000 documents.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.features import OPENERS, TOPICS, document, sentence
from bench.harness import Report, measure, timer
from bench.vector_search import mix

DIM = 384


def author_topics(author: int) -> list[tuple[str, str]]:
    return [TOPICS[author % len(TOPICS)], TOPICS[(author * 5 + 1) % len(TOPICS)]]


def documents(author: int, start: int, n: int) -> list[tuple[object, ...]]:
    """Raw rows (id, author, url, kind, title, content, content_hash) of documents start..start+n."""
    from llm_twin_assets.records import content_hash, document_id

    rows = []
    slug = f"author-{author:03d}"
    for i in range(start, start + n):
        rng = random.Random(f"{author}-{i}")
        topic, vocabulary = rng.choice(author_topics(author))
        kind, content = document(rng, topic, vocabulary.split())
        content += f"\n\nNote {i} of {slug}."  # no two documents alike (duplicates are judged apart)
        url = f"https://{slug}.example/{i}"
        rows.append((document_id(slug, url), slug, url, kind, f"{topic} {i}", content, content_hash(content)))
    return rows


def sentence_pool(embedder, authors: int) -> tuple[np.ndarray, np.ndarray, list[int]]:  # type: ignore[no-untyped-def]
    """Real MiniLM embeddings of sentences on each topic: (train pool per topic, held-out, topic ids)."""
    texts, topic_of = [], []
    for t, (topic, vocabulary) in enumerate(TOPICS):
        rng = random.Random(f"pool-{t}")
        for _ in range(160):
            texts.append(sentence(rng, topic, vocabulary.split()) + " " + rng.choice(OPENERS))
            topic_of.append(t)
    vectors = embedder.encode(texts, batch_size=64, normalize_embeddings=True)
    held_out = np.array([i % 5 == 0 for i in range(len(texts))])
    return vectors, held_out, topic_of


def search_figures(conn, nearest, queries: list[np.ndarray], authors: list[str | None]):  # type: ignore[no-untyped-def]
    """Latency of ``nearest()`` (one client) and its recall@10 against exact search."""
    items = list(zip(queries, authors, strict=True))
    latency, found = measure(lambda q: [n.chunk_id for n in nearest(conn, q[0], k=10, author=q[1])], items)
    truth = [[n.chunk_id for n in nearest(conn, q, k=10, author=a, exact=True)] for q, a in items]
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))  # type: ignore[arg-type]
    return latency, recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--docs", type=int, default=200, help="documents per author at 1x")
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--encode-sample", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--real-vectors", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from llm_twin_assets.embeddings import load_embedder, load_encoder, model_label
    from llm_twin_assets.features.chunking import CHUNKER_VERSION, ChunkingOptions
    from llm_twin_assets.features.cleaning import CLEANER_VERSION, clean_frame
    from llm_twin_assets.features.parallel import DocumentToChunk, available_cores, chunk_documents
    from llm_twin_assets.features.tokens import token_counter
    from llm_twin_assets.records import stable_id
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import embedded
    from llm_twin_assets.store.author_indexes import ensure_author_index
    from llm_twin_assets.store.chunks import (
        chunks_needing_embeddings,
        documents_needing_chunks,
        refresh_statistics,
        replace_chunks,
        write_embeddings,
    )
    from llm_twin_assets.store.cleaned import raw_needing_cleaning, write_cleaned
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.upsert import bulk_upsert
    from llm_twin_assets.store.vectors import nearest

    scales = [int(s) for s in args.scales.split(",")]
    cores = available_cores()
    home = Path(tempfile.mkdtemp(prefix="llm-twin-bench-scale-"))
    settings = get_settings(home=str(home), device="cpu")
    report = Report("scale")
    report.note("cores", cores)
    report.note("authors", args.authors)
    report.note("documents per author at 1x", args.docs)
    report.note(
        "vectors", "real encoder" if args.real_vectors else "MiniLM-based synthetic mix (see docstring)"
    )
    embedder = load_embedder(settings)
    encoder = load_encoder(settings, embedder)
    report.note("encoder backend", encoder.backend)
    label = model_label(settings)
    count = token_counter(embedder.tokenizer)
    options = ChunkingOptions(max_tokens=int(embedder.max_seq_length), context_tokens=32)
    signature = (
        f"v{CHUNKER_VERSION}|{options}|True|{embedder.tokenizer.name_or_path}|{len(embedder.tokenizer)}"
    )
    pool, held_out, topic_of = sentence_pool(embedder, args.authors)
    topic_index = np.array(topic_of)
    rng = np.random.default_rng(0)
    slugs = [f"author-{a:03d}" for a in range(args.authors)]

    def author_pool(a: int, held: bool) -> np.ndarray:
        topics = [TOPICS.index(t) for t in author_topics(a)]
        return pool[np.isin(topic_index, topics) & (held_out == held)]

    database = open_database(settings)
    loaded = 0
    try:
        with database.connect() as conn:
            for slug in slugs:
                conn.execute("INSERT INTO authors (slug, name) VALUES (%s, %s)", (slug, slug))
        for scale in scales:
            new = args.docs * scale - loaded
            print(
                f"\n== {scale}x: {args.authors * args.docs * scale:,} documents ({args.authors * new:,} new)"
            )
            with database.connect() as conn:
                for a in range(args.authors):
                    bulk_upsert(
                        conn,
                        "raw_documents",
                        ("id", "author", "url", "kind", "title", "content", "content_hash"),
                        documents(a, loaded, new),
                    )
            loaded += new
            n_docs = args.authors * new

            # Cleaning: per author (as partitions run), in one process (see features/parallel.py).
            with timer() as elapsed, database.connect() as conn:
                for slug in slugs:
                    raw = raw_needing_cleaning(conn, slug, CLEANER_VERSION)
                    cleaned, rejected = clean_frame(raw)
                    write_cleaned(conn, slug, raw["id"].to_list(), cleaned, rejected, CLEANER_VERSION)
            report.add(
                scale=f"{scale}x", stage="clean + write (per author)", items=n_docs, seconds=elapsed(),
                per_s=n_docs / elapsed(), s_per_1k_docs=1000 * elapsed() / n_docs,
            )  # fmt: skip

            # Chunking: the stale documents of every author, chunked on one process and on every core.
            with database.connect() as conn:
                stale = {
                    slug: documents_needing_chunks(conn, slug, lambda h, k, o: stable_id(h, k, o, signature))
                    for slug in slugs
                }
            todo = [
                DocumentToChunk(d.id, d.kind, d.content, d.title, tuple(d.headings))
                for docs in stale.values()
                for d in docs
            ]
            with timer() as one:
                alone = chunk_documents(todo, options, count, workers=1)
            with timer() as many:
                spread = chunk_documents(todo, options, count, workers=cores)
            n_chunks = sum(map(len, spread))
            report.add(
                scale=f"{scale}x", stage=f"chunk: 1 process vs {cores}", items=n_chunks, seconds=many(),
                per_s=n_chunks / many(), one_process_per_s=n_chunks / one(), speedup=one() / many(),
                same_chunks=alone == spread, s_per_1k_docs=1000 * many() / n_docs,
            )  # fmt: skip
            by_document = {d.id: chunks for d, chunks in zip(todo, spread, strict=True)}
            with timer() as elapsed, database.connect() as conn:
                for slug, docs in stale.items():
                    made = [c for d in docs for c in by_document[d.id]]
                    replace_chunks(conn, slug, [(d.id, d.kind, d.key) for d in docs], made, count.digest)
                refresh_statistics(conn)
            report.add(
                scale=f"{scale}x", stage="write chunks", items=n_chunks, seconds=elapsed(),
                per_s=n_chunks / elapsed(),
            )  # fmt: skip

            # The encoder on a sample of the new chunks: the chunker's ids reused, and tokenizing.
            with database.connect() as conn:
                waiting = {
                    slug: chunks_needing_embeddings(conn, slug, label, encoder.tokenizer_digest)
                    for slug in slugs
                }
            flat = [c for rows in waiting.values() for c in rows]
            sample = [
                flat[i] for i in np.random.default_rng(scale).permutation(len(flat))[: args.encode_sample]
            ]
            texts = [c.text for c in sample]
            encoder.encode(texts[:64], [c.token_ids for c in sample[:64]])  # warm-up
            with timer() as reused:
                encoder.encode(texts, [c.token_ids for c in sample])
            with timer() as tokenized:
                encoder.encode(texts, [None] * len(texts))
            with timer() as tokenize_only:
                for start in range(0, len(texts), encoder.batch_size):
                    encoder._tokenize(texts[start : start + encoder.batch_size])
            report.add(
                scale=f"{scale}x", stage=f"encode sample ({encoder.backend}, ids reused)", items=len(sample),
                seconds=reused(), per_s=len(sample) / reused(), tokenizing_per_s=len(sample) / tokenized(),
                tokenizer_alone_per_s=len(sample) / tokenize_only(),
            )  # fmt: skip

            # Every new chunk's vector into pgvector (HNSW maintained), per author.
            with timer() as elapsed, database.connect() as conn:
                for a, slug in enumerate(slugs):
                    rows = waiting[slug]
                    if not rows:
                        continue
                    if args.real_vectors:
                        vectors = encoder.encode([c.text for c in rows], [c.token_ids for c in rows])
                    else:
                        vectors = mix(rng, author_pool(a, held=False), len(rows))
                    write_embeddings(conn, [c.id for c in rows], vectors, label, DIM)
            with database.connect(autocommit=True) as conn:
                for slug in slugs:
                    ensure_author_index(conn, slug)
            report.add(
                scale=f"{scale}x", stage="write embeddings (HNSW maintained)" + (" incl. encoding" if args.real_vectors else ""),
                items=len(flat), seconds=elapsed(), per_s=len(flat) / elapsed(),
            )  # fmt: skip

            # Search on the whole store: latency and recall@10 of the index path against exact search.
            with database.connect() as conn:
                total = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[index]
                asked = rng.integers(args.authors, size=args.queries)
                queries = [mix(rng, author_pool(int(a), held=True), 1)[0] for a in asked]
                for name, filters in (
                    ("unfiltered", [None] * len(queries)),
                    ("one author", [slugs[a] for a in asked]),
                ):
                    latency, recall = search_figures(conn, nearest, queries, filters)
                    report.add(
                        scale=f"{scale}x", stage=f"search {name}", items=total, p50_ms=latency.p50_ms,
                        p95_ms=latency.p95_ms, qps=latency.qps, recall_at_10=recall,
                    )  # fmt: skip
    finally:
        embedded.stop(settings.pgdata)
    report.save()


if __name__ == "__main__":
    main()
