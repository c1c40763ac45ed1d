"""What per-author HNSW indexes cost as authors multiply: 0, 10, 100 and 1,000 partial indexes on one table.

The store gives an author their own partial HNSW index (``WHERE author = '<slug>'``) once they have
``AUTHOR_INDEX_MIN_ROWS`` embedded chunks (``store/vectors.py``). With a thousand authors that could be a
thousand indexes on ``chunks``, and two costs grow with their number whatever their size: the planner
checks every partial index's predicate against a query's filter (each search plans twice: the row
estimate and the query, with the author inlined), and every inserted row is tested against every
index's predicate. This bench measures both on the embedded PostgreSQL + pgvector:

- ``--authors`` authors x ``--rows`` rows of random unit 384-d vectors (the costs measured here do not
  depend on the vectors' distribution), the production B-tree on ``(author, kind)``;
- indexes added in steps (0 -> 10 -> 100 -> 1,000 by default), each build timed;
- after each step: planning and execution time (p50/p95 over ``--queries`` author-filtered searches, from
  ``EXPLAIN (ANALYZE)``) for an author with an index and one without, and the insert rate of 2,000 new
  rows spread over all authors, written as the store writes (COPY into a staging table, one
  INSERT ... SELECT), then rolled back.

Run: ``python bench/author_indexes.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Report
from llm_twin_assets.store import embedded
from llm_twin_assets.store.author_indexes import HNSW_OPTIONS

DIM = 384
TABLE = "bench_author_ix"


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def load(conn: psycopg.Connection, authors: int, rows: int, rng: np.random.Generator) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(
        f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, author text NOT NULL, kind text NOT NULL, "
        f"embedding vector({DIM}))"
    )
    vectors = unit(rng, authors * rows)
    with conn.cursor().copy(
        f"COPY {TABLE} (author, kind, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "text", "vector"])
        for i, vector in enumerate(vectors):
            copy.write_row((f"a{i // rows:04d}", "article", vector))
    conn.execute(f"CREATE INDEX {TABLE}_author_kind ON {TABLE} (author, kind)")
    conn.execute(f"ANALYZE {TABLE}")


def add_indexes(conn: psycopg.Connection, first: int, last: int) -> list[float]:
    seconds = []
    for a in range(first, last):
        start = time.perf_counter()
        conn.execute(
            f"CREATE INDEX {TABLE}_hnsw_a{a:04d} ON {TABLE} USING hnsw ((embedding::halfvec({DIM})) "
            f"halfvec_cosine_ops) WITH ({HNSW_OPTIONS}) WHERE author = 'a{a:04d}'"
        )
        seconds.append(time.perf_counter() - start)
    return seconds


def search_times(
    conn: psycopg.Connection, author: str, queries: np.ndarray
) -> tuple[list[float], list[float]]:
    """Planning and execution ms of the store's author-filtered search shape, author inlined."""
    planning, execution = [], []
    for q in queries:
        plan = conn.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM {TABLE} WHERE embedding IS NOT NULL AND "
            f"author = '{author}' ORDER BY embedding::halfvec({DIM}) <=> %s::halfvec({DIM}) LIMIT 20",
            (q,),
            prepare=False,
        ).fetchone()[0][0]  # type: ignore[index]
        estimate = conn.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1 FROM {TABLE} WHERE embedding IS NOT NULL AND author = %s",
            (author,),
            prepare=False,
        ).fetchone()[0][0]  # type: ignore[index]
        planning.append(plan["Planning Time"] + estimate["Planning Time"])
        execution.append(plan["Execution Time"])
    return planning, execution


def insert_rate(conn: psycopg.Connection, authors: int, rng: np.random.Generator, n: int = 2_000) -> float:
    """Rows/s of a bulk write as the store does it (COPY into a staging table, one INSERT ... SELECT),
    rolled back."""
    vectors = unit(rng, n)
    picks = rng.integers(0, authors, n)
    start = time.perf_counter()
    with conn.transaction(force_rollback=True):
        conn.execute(f"CREATE TEMP TABLE stage (author text, embedding vector({DIM})) ON COMMIT DROP")
        with conn.cursor().copy("COPY stage (author, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "vector"])
            for pick, vector in zip(picks, vectors, strict=True):
                copy.write_row((f"a{int(pick):04d}", vector))
        conn.execute(
            f"INSERT INTO {TABLE} (author, kind, embedding) SELECT author, 'article', embedding FROM stage"
        )
    return n / (time.perf_counter() - start)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=int, default=1_000)
    parser.add_argument("--rows", type=int, default=60, help="rows per author")
    parser.add_argument("--steps", default="0,10,100,1000", help="index counts to measure at")
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    rng = np.random.default_rng(7)
    home = Path(tempfile.mkdtemp(prefix="llm-twin-bench-"))
    url = embedded.ensure_running(home / "pgdata")
    report = Report("author_indexes")
    report.note("authors x rows", f"{args.authors} x {args.rows}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("SET maintenance_work_mem = '256MB'")
        load(conn, args.authors, args.rows, rng)
        queries = unit(rng, args.queries)
        built = 0
        for step in steps:
            builds = add_indexes(conn, built, min(step, args.authors))
            built = min(step, args.authors)
            conn.execute(f"ANALYZE {TABLE}")
            with_plan, with_exec = search_times(conn, "a0000", queries) if built else ([], [])
            without = f"a{args.authors - 1:04d}"
            plain_plan, plain_exec = (
                search_times(conn, without, queries) if built < args.authors else ([], [])
            )
            rate = insert_rate(conn, args.authors, rng)
            row: dict[str, object] = {
                "indexes": built,
                "build s each (mean)": round(statistics.mean(builds), 4) if builds else None,
                "insert rows/s": round(rate),
            }
            if with_plan:
                row |= {
                    "indexed author: plan p50/p95 ms": f"{p(with_plan, 0.5):.2f}/{p(with_plan, 0.95):.2f}",
                    "indexed author: exec p50 ms": round(p(with_exec, 0.5), 2),
                }
            if plain_plan:
                row |= {
                    "author without: plan p50/p95 ms": f"{p(plain_plan, 0.5):.2f}/{p(plain_plan, 0.95):.2f}",
                    "author without: exec p50 ms": round(p(plain_exec, 0.5), 2),
                }
            report.add(**row)
        conn.execute(f"DROP TABLE {TABLE}")
    embedded.stop(home / "pgdata")
    report.save()


if __name__ == "__main__":
    main()
