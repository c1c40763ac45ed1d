"""Vector search on PostgreSQL 18 + pgvector 0.8: 100,000 chunks of 384-d embeddings, 20 authors.

Data (documented synthetic distribution built on real MiniLM embeddings): 4,000 generated sentences on
per-author topics are embedded with the bundled all-MiniLM-L6-v2. Each of the 100,000 rows is
``normalize(0.8*a + 0.5*b + 0.35*n)`` where ``a`` and ``b`` are embeddings of two of its author's
sentences and ``n`` is isotropic Gaussian noise scaled to unit norm: rows keep MiniLM's anisotropy and
topical clusters, and near-duplicates are as common as in real chunked prose. Authors are skewed:
``a00`` holds 30% of rows, ``a19`` 0.5%, the other 18 share the rest. Queries (200) are the same mix
drawn from held-out sentences, each asked by one author.

Each row also has a kind (article 70%, post 25%, repository 5%, independent of its vector) and the
table has the production B-tree on ``(author, kind)``.

For each index variant: build time, recall@10 against exact search, p50/p95 latency and queries/s of
one client, and the speed-up over exact search, unfiltered and filtered by a frequent (30%), a middle
(~4%) and a rare (0.5%) author, by the frequent and the middle author asked about another author's
subjects (off-topic), by a kind, and by an author and a kind. ``nearest()`` is measured with the shared
index only and with the authors' own indexes (``ensure_author_indexes``), with the path it took. The
crossover rows measure where exact search stops being faster than an index walk: authors of 250 to
8,000 rows (carved out of the frequent author) and kind filters keeping 0.5% to 10% of the rows.

Run: ``make bench-vector`` (about 10–15 minutes on 2 cores). ``--rows`` and ``--queries`` shrink it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Latency, Report, measure, timer
from llm_twin_assets.settings import get_settings
from llm_twin_assets.store import embedded

DIM = 384
N_AUTHORS = 20
TOPICS = [
    "databases indexing queries postgres transactions latency storage replication",
    "gardening tomatoes soil compost seeds watering harvest greenhouse",
    "machine learning gradients training models datasets overfitting evaluation",
    "running marathon training shoes pace endurance injuries recovery",
    "cooking bread sourdough flour oven fermentation crust recipes",
    "startups fundraising investors product market fit hiring growth",
    "photography lenses light exposure composition portraits editing",
    "rust programming ownership borrow checker lifetimes compiler safety",
    "climate policy emissions carbon energy transition renewables grid",
    "chess openings endgames tactics tournaments rating strategy",
    "music guitar chords practice improvisation jazz theory recording",
    "personal finance budgeting index funds savings retirement taxes",
    "distributed systems consensus raft partitions clocks failures",
    "parenting toddlers sleep routines patience school reading",
    "travel trains europe hostels maps languages food markets",
    "kubernetes containers deployments clusters autoscaling helm",
    "writing essays drafts editing clarity voice readers feedback",
    "history empires trade wars archives maps revolutions",
    "frontend react components state rendering css accessibility",
    "cycling bikes gears climbs routes weather tours",
    "statistics bayesian priors sampling inference uncertainty",
    "coffee espresso grinders roasting beans brewing",
]
FRAMES = [
    "I keep coming back to {a} and {b} when I think about {c}.",
    "Here is what I learned about {a}: {b} matters more than {c}.",
    "Most people get {a} wrong because they ignore {b} and {c}.",
    "A short note on {a}, {b}, and why {c} is overrated.",
    "My rule of thumb for {a} is simple: start with {b}, then {c}.",
    "After a year of {a}, the surprise was how much {b} shaped {c}.",
]


def author_shares(n_rows: int) -> list[int]:
    """a00: 30%, a19: 0.5%, the other 18 authors share the remaining rows evenly."""
    frequent, rare = int(0.30 * n_rows), max(1, int(0.005 * n_rows))
    middle = n_rows - frequent - rare
    counts = [frequent] + [middle // 18] * 18 + [rare]
    counts[1] += n_rows - sum(counts)
    return counts


def base_sentences(rng: np.random.Generator, per_author: int) -> tuple[list[str], list[int]]:
    texts, owners = [], []
    for author in range(N_AUTHORS):
        topics = [TOPICS[(author * 3 + j) % len(TOPICS)].split() for j in range(2)]
        for _ in range(per_author):
            words = topics[rng.integers(2)]
            a, b, c = rng.choice(words, 3, replace=False)
            texts.append(FRAMES[rng.integers(len(FRAMES))].format(a=a, b=b, c=c))
            owners.append(author)
    return texts, owners


def mix(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    a = pool[rng.integers(len(pool), size=n)]
    b = pool[rng.integers(len(pool), size=n)]
    noise = rng.standard_normal((n, DIM)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    v = 0.8 * a + 0.5 * b + 0.35 * noise
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def make_data(
    n_rows: int, n_queries: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from llm_twin_assets.embeddings import load_embedder

    rng = np.random.default_rng(seed)
    texts, owners = base_sentences(rng, per_author=200)
    with timer() as elapsed:
        base = load_embedder(get_settings(device="cpu")).encode(
            texts, batch_size=64, normalize_embeddings=True
        )
    print(f"# embedded {len(texts)} base sentences with MiniLM in {elapsed():.1f} s", flush=True)
    owners_arr = np.array(owners)
    train_mask = rng.random(len(texts)) < 0.8
    rows, authors = [], []
    for author, count in enumerate(author_shares(n_rows)):
        pool = base[(owners_arr == author) & train_mask]
        rows.append(mix(rng, pool, count))
        authors += [author] * count
    # Queries per author from held-out sentences of that author's topics: a twin asks about its
    # author's subjects. Row N_AUTHORS holds queries of random authors (for unfiltered search).
    queries = np.zeros((N_AUTHORS + 1, n_queries, DIM), dtype=np.float32)
    for author in range(N_AUTHORS):
        queries[author] = mix(rng, base[(owners_arr == author) & ~train_mask], n_queries)
    pick = rng.integers(N_AUTHORS, size=n_queries)
    queries[N_AUTHORS] = queries[pick, np.arange(n_queries)]
    order = rng.permutation(n_rows)  # interleave authors on disk, as real ingestion would
    return np.vstack(rows)[order], np.array(authors)[order], queries, pick


KINDS = {"article": 0.70, "post": 0.25, "repository": 0.05}
BTREE = "bench_chunks_author_kind"


def load(conn: psycopg.Connection, vectors: np.ndarray, authors: np.ndarray, seed: int = 1) -> None:
    """The rows with the columns ``nearest()`` reads (document_id and content are placeholders)."""
    kinds = np.random.default_rng(seed).choice(list(KINDS), size=len(vectors), p=list(KINDS.values()))
    conn.execute("DROP TABLE IF EXISTS bench_chunks")
    conn.execute(
        "CREATE TABLE bench_chunks (id integer PRIMARY KEY, document_id text NOT NULL, author text NOT NULL,"
        " kind text NOT NULL, content text NOT NULL, embedding vector(384))"
    )
    with conn.cursor().copy(
        "COPY bench_chunks (id, document_id, author, kind, content, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int4", "text", "text", "text", "text", "vector"])
        for i, (vector, author, kind) in enumerate(zip(vectors, authors, kinds, strict=True)):
            copy.write_row((i, f"d{i // 8}", f"a{author:02d}", str(kind), "", vector))
    conn.execute(f"CREATE INDEX {BTREE} ON bench_chunks (author, kind)")
    conn.execute("VACUUM ANALYZE bench_chunks")


def build(conn: psycopg.Connection, name: str, ddl: str) -> float:
    with timer() as elapsed:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute(ddl)
    conn.execute("ANALYZE bench_chunks")
    return elapsed()


def drop_indexes(conn: psycopg.Connection, keep: set[str]) -> None:
    names = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'bench_chunks'")]
    for name in names:
        if name not in keep and not name.endswith("_pkey"):
            conn.execute(f"DROP INDEX {name}")


Item = tuple[np.ndarray, str | None, list[str] | None]
"""One search: the query vector, the author filter, the kinds filter."""
Query = Callable[[Item], list[int]]


def query_fn(conn: psycopg.Connection, sql: str, settings: dict[str, str]) -> Query:
    for key, value in settings.items():
        conn.execute(f"SET {key} = {value}")

    def run(item: Item) -> list[int]:
        vector, author, kinds = item
        clauses = (["author = %(author)s"] if author else []) + (["kind = ANY(%(kinds)s)"] if kinds else [])
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        params = {"q": vector, "author": author, "kinds": kinds}
        return [r[0] for r in conn.execute(sql.format(where=where), params, prepare=True)]

    return run


def nearest_fn(conn: psycopg.Connection, table: str = "bench_chunks", exact: bool = False) -> Query:
    """What ``llm_twin_assets.store.vectors.nearest`` runs, returning row ids."""
    from llm_twin_assets.store.vectors import nearest_sql

    def run(item: Item) -> list[int]:
        statements, params = nearest_sql(
            conn, item[0], k=10, author=item[1], kinds=item[2], table=table, columns="id", exact=exact
        )
        if len(statements) == 1:
            return [r[0] for r in conn.execute(statements[0], params)]
        with conn.transaction():
            for statement in statements[:-1]:
                conn.execute(statement)
            return [r[0] for r in conn.execute(statements[-1], params)]

    return run


def path_of(conn: psycopg.Connection, item: Item, table: str = "bench_chunks") -> str:
    """The path nearest() takes for this filter, and the index or scan its plan uses."""
    from llm_twin_assets.store import vectors

    path = vectors.search_path(conn, author=item[1], kinds=item[2], table=table)
    statements, params = vectors.nearest_sql(conn, item[0], k=10, author=item[1], kinds=item[2], table=table)
    with conn.transaction():
        for statement in statements[:-1]:
            conn.execute(statement)
        plan = [r[0] for r in conn.execute(b"EXPLAIN " + statements[-1].as_bytes(conn), params)]
    scans = [
        line.split("->")[-1].strip().split("  (")[0].split(" on ")[0]
        for line in plan
        if "Scan" in line and "CTE" not in line
    ]
    return f"{path}: {'; '.join(scans)}"


def reset(conn: psycopg.Connection) -> None:
    conn.execute("RESET ALL")


EXACT = "SELECT id FROM bench_chunks {where} ORDER BY embedding <=> %(q)s LIMIT 10"
HNSW = EXACT
HALFVEC = (
    "SELECT id FROM bench_chunks {where} ORDER BY embedding::halfvec(384) <=> %(q)s::halfvec(384) LIMIT 10"
)
BINARY = (
    "SELECT id FROM (SELECT id, embedding FROM bench_chunks {where} "
    "ORDER BY binary_quantize(embedding)::bit(384) <~> binary_quantize(%(q)s) LIMIT {candidates}) c "
    "ORDER BY embedding <=> %(q)s LIMIT 10"
)


def recall(results: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(r) & set(t)) / len(t) for r, t in zip(results, truth, strict=True) if t]))


CROSS_AUTHORS = (250, 500, 1_000, 2_000, 4_000, 8_000)
CROSS_KINDS = (0.005, 0.01, 0.02, 0.05, 0.10)


def crossover(conn: psycopg.Connection, report: Report, queries: np.ndarray) -> None:
    """Where exact search stops being faster than an index walk, on a copy of the table: authors of
    250-8,000 rows carved out of a00 (each with its own index: exact vs that index, on- and off-topic)
    and kinds keeping 0.5-10% of the rows (exact vs the shared index's filtered walk)."""
    from llm_twin_assets.store import author_indexes as index_store
    from llm_twin_assets.store import vectors

    bounds = np.cumsum((0, *CROSS_AUTHORS))
    authors = " ".join(
        f"WHEN n <= {hi} THEN 'x{size:05d}'" for size, hi in zip(CROSS_AUTHORS, bounds[1:], strict=True)
    )
    edges = np.cumsum(CROSS_KINDS)
    kinds = " ".join(
        f"WHEN h < {edge:.4f} THEN 'k{share * 1000:03.0f}'"
        for share, edge in zip(CROSS_KINDS, edges, strict=True)
    )
    conn.execute("DROP TABLE IF EXISTS cross_chunks")
    conn.execute(
        "CREATE TABLE cross_chunks AS SELECT id, document_id, content, embedding,"
        f" CASE WHEN author <> 'a00' THEN author {authors} ELSE author END AS author,"
        f" CASE {kinds} ELSE 'article' END AS kind"
        " FROM (SELECT *, row_number() OVER (PARTITION BY author ORDER BY id) AS n,"
        "  (hashint4(id)::bigint + 2147483648) / 4294967296.0 AS h FROM bench_chunks) s ORDER BY id"
    )
    conn.execute("ALTER TABLE cross_chunks ADD PRIMARY KEY (id)")
    conn.execute("CREATE INDEX cross_chunks_author_kind ON cross_chunks (author, kind)")
    conn.execute(
        "CREATE INDEX cross_chunks_hnsw ON cross_chunks USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)"
        " WITH (m = 16, ef_construction = 128)"
    )
    conn.execute("VACUUM ANALYZE cross_chunks")
    for size in CROSS_AUTHORS:
        index_store.ensure_author_index(conn, f"x{size:05d}", table="cross_chunks", min_rows=0)

    def compare(label: str, items: list[Item], walk: str) -> None:
        exact_latency, exact_results = measure(nearest_fn(conn, "cross_chunks", exact=True), items)
        saved = vectors.EXACT_BELOW_ROWS, vectors.SHARED_EXACT_BELOW_ROWS
        vectors.EXACT_BELOW_ROWS, vectors.SHARED_EXACT_BELOW_ROWS = 0, 0  # always the index walk
        try:
            latency, results = measure(nearest_fn(conn, "cross_chunks"), items)
        finally:
            vectors.EXACT_BELOW_ROWS, vectors.SHARED_EXACT_BELOW_ROWS = saved
        for variant, lat, rec in (
            ("crossover: exact", exact_latency, 1.0),
            (f"crossover: {walk}", latency, recall(results, exact_results)),  # type: ignore[arg-type]
        ):
            report.add(
                variant=variant,
                filter=label,
                build_s="",
                recall=rec,
                p50_ms=lat.p50_ms,
                p95_ms=lat.p95_ms,
                qps=lat.qps,
                speedup=exact_latency.p50_ms / lat.p50_ms,
            )

    for size in CROSS_AUTHORS:
        author = f"x{size:05d}"
        compare(f"{size:,} rows, on-topic", [(q, author, None) for q in queries[0][:100]], "author index")
        compare(f"{size:,} rows, off-topic", [(q, author, None) for q in queries[5][:100]], "author index")
    for share in CROSS_KINDS:
        kind = f"k{share * 1000:03.0f}"
        items: list[Item] = [(q, None, [kind]) for q in queries[N_AUTHORS][:100]]
        compare(f"kind keeping {share:.1%}", items, "shared index walk")
    conn.execute("DROP TABLE cross_chunks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--home", type=Path, default=None, help="data home for the bench server (default: a temp dir)"
    )
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="llm-twin-bench-"))
    pgdata = home / "pgdata"
    url = embedded.ensure_running(pgdata)
    report = Report("vector_search")
    report.note("rows", args.rows)
    report.note("queries", args.queries)
    report.note("threads", os.cpu_count())

    vectors, authors, queries, _ = make_data(args.rows, args.queries)
    shares = {f"a{a:02d}": float((authors == a).mean()) for a in (0, 1, 19)}
    report.note("author shares (frequent, middle, rare)", shares)

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        report.note("postgres", conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        report.note(
            "pgvector",
            conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()[0],
        )  # type: ignore[index]
        report.note("shared_buffers", conn.execute("SHOW shared_buffers").fetchone()[0])  # type: ignore[index]
        with timer() as elapsed:
            load(conn, vectors, authors)
        report.note("load (COPY binary + btree + analyze) s", elapsed())
        conn.execute("SET maintenance_work_mem = '1GB'")

        filters: dict[str, list[Item]] = {
            "unfiltered": [(q, None, None) for q in queries[N_AUTHORS]],
            "frequent a00 (30%)": [(q, "a00", None) for q in queries[0]],
            "middle a01 (~3.8%)": [(q, "a01", None) for q in queries[1]],
            "rare a19 (0.5%)": [(q, "a19", None) for q in queries[19]],
            # Worst case: asking one author about another author's subjects.
            "a00, off-topic queries": [(q, "a00", None) for q in queries[5]],
            "a01, off-topic queries": [(q, "a01", None) for q in queries[5]],
            "kind repository (5%)": [(q, None, ["repository"]) for q in queries[N_AUTHORS]],
            "a00 + kind post (7.5%)": [(q, "a00", ["post"]) for q in queries[0]],
        }
        truth: dict[str, list[list[int]]] = {}
        exact_p50: dict[str, float] = {}
        drop_indexes(conn, keep={BTREE})
        for label, items in filters.items():
            run = query_fn(conn, EXACT, {"enable_indexscan": "off"} if label == "unfiltered" else {})
            latency, results = measure(run, items)
            reset(conn)
            truth[label] = results  # type: ignore[assignment]
            exact_p50[label] = latency.p50_ms
            report.add(
                variant="exact (seq scan / btree)",
                filter=label,
                build_s="",
                recall=1.0,
                p50_ms=latency.p50_ms,
                p95_ms=latency.p95_ms,
                qps=latency.qps,
                speedup=1.0,
            )

        def evaluate(
            variant: str,
            build_s: float | str,
            sql: str,
            settings: dict[str, str],
            labels: list[str] | None = None,
        ) -> None:
            for label in labels or list(filters):
                run = query_fn(conn, sql, settings)
                latency: Latency
                latency, results = measure(run, filters[label])
                reset(conn)
                report.add(
                    variant=variant,
                    filter=label,
                    build_s=build_s,
                    recall=recall(results, truth[label]),  # type: ignore[arg-type]
                    p50_ms=latency.p50_ms,
                    p95_ms=latency.p95_ms,
                    qps=latency.qps,
                    speedup=exact_p50[label] / latency.p50_ms,
                )

        def evaluate_nearest(variant: str, build_s: float | str = "") -> None:
            for label, items in filters.items():
                latency, results = measure(nearest_fn(conn), items)
                report.add(
                    variant=variant,
                    filter=label,
                    build_s=build_s if label == "unfiltered" else "",
                    recall=recall(results, truth[label]),  # type: ignore[arg-type]
                    p50_ms=latency.p50_ms,
                    p95_ms=latency.p95_ms,
                    qps=latency.qps,
                    speedup=exact_p50[label] / latency.p50_ms,
                    path=path_of(conn, items[0]),
                )

        iterative = {"hnsw.iterative_scan": "relaxed_order"}

        # 1. the index sql/001_core.sql creates: vector, m=16, ef_construction=128
        built = build(
            conn,
            "hnsw_16_128",
            "CREATE INDEX hnsw_16_128 ON bench_chunks USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 128)",
        )
        for ef in (40, 64, 100, 200):
            evaluate(
                f"vector m16 efc128 ef{ef}",
                built if ef == 40 else "",
                HNSW,
                {"hnsw.ef_search": str(ef), **iterative},
                None if ef == 64 else ["unfiltered"],
            )
        drop_indexes(conn, keep={BTREE})

        # 2. halfvec: half the bytes per vector, the index fits the cache better
        built = build(
            conn,
            "hnsw_half",
            "CREATE INDEX hnsw_half ON bench_chunks USING hnsw "
            "((embedding::halfvec(384)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)",
        )
        for ef in (40, 64, 100):
            evaluate(
                f"halfvec m16 efc128 ef{ef}",
                built if ef == 40 else "",
                HALFVEC,
                {"hnsw.ef_search": str(ef), **iterative},
                ["unfiltered"],
            )

        # 2b. what llm_twin_assets.store.vectors.nearest does: halfvec HNSW, 2k candidates re-ranked in
        # full precision, the path chosen from the filter's estimated rows. First with the index
        # sql/001_core.sql creates only, then with each author's own index, as the pipeline builds them.
        from llm_twin_assets.store.author_indexes import ensure_author_indexes
        from llm_twin_assets.store.vectors import DEFAULT_EF_SEARCH

        evaluate_nearest(f"nearest(): shared index only, ef{DEFAULT_EF_SEARCH}")
        with timer() as elapsed:
            built_authors = ensure_author_indexes(conn, table="bench_chunks")
        report.note("author indexes built (authors, s)", (len(built_authors), round(elapsed(), 1)))
        evaluate_nearest(f"nearest(): + author indexes, ef{DEFAULT_EF_SEARCH}", elapsed())
        sizes = conn.execute(
            "SELECT pg_size_pretty(sum(pg_relation_size(indexname::regclass))) FROM pg_indexes "
            "WHERE tablename = 'bench_chunks' AND indexname LIKE 'bench_chunks_hnsw_author_%'"
        ).fetchone()
        report.note("author indexes, total size", sizes[0] if sizes else "")
        drop_indexes(conn, keep={BTREE})

        # 3. binary quantization (48 bytes a vector) + exact re-ranking of the candidates
        built = build(
            conn,
            "hnsw_bit",
            "CREATE INDEX hnsw_bit ON bench_chunks USING hnsw "
            "((binary_quantize(embedding)::bit(384)) bit_hamming_ops) WITH (m = 16, ef_construction = 128)",
        )
        for candidates in (40, 100, 200):
            evaluate(
                f"binary+rerank {candidates}",
                built if candidates == 40 else "",
                BINARY.replace("{candidates}", str(candidates)),
                {"hnsw.ef_search": str(max(candidates, 40)), **iterative},
                ["unfiltered"],
            )
        drop_indexes(conn, keep={BTREE})

        # 4. per-author partial indexes (what LIST partitions by author would give each author)
        for author, label in (("a00", "frequent a00 (30%)"), ("a01", "middle a01 (~3.8%)")):
            built = build(
                conn,
                f"hnsw_{author}",
                f"CREATE INDEX hnsw_{author} ON bench_chunks USING hnsw "
                f"(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 128) "
                f"WHERE author = '{author}'",
            )
            labels = [label, f"{author}, off-topic queries"]
            evaluate(f"partial index {author}, ef40", built, HNSW, {"hnsw.ef_search": "40"}, labels)
        index_sizes = conn.execute(
            "SELECT indexname, pg_size_pretty(pg_relation_size(indexname::regclass)) FROM pg_indexes "
            "WHERE tablename = 'bench_chunks'"
        ).fetchall()
        report.note("index sizes", dict(index_sizes))
        drop_indexes(conn, keep={BTREE})
        crossover(conn, report, queries)
        report.note(
            "table size", conn.execute("SELECT pg_size_pretty(pg_table_size('bench_chunks'))").fetchone()[0]
        )  # type: ignore[index]
    report.save()
    if args.home is None:
        embedded.stop(pgdata)


if __name__ == "__main__":
    main()
