import numpy as np
import pytest
from psycopg import sql as psycopg_sql

from llm_twin_assets.errors import TwinError
from llm_twin_assets.store import vectors as vector_store
from llm_twin_assets.store.database import Database
from llm_twin_assets.store.vectors import nearest

from .helpers import seed_chunks, unit_vectors


@pytest.fixture(scope="module")
def seeded(database: Database) -> tuple[Database, np.ndarray, list[str], list[str]]:
    """2,000 chunks, seeded once for the module (HNSW inserts cost ~5 ms each on 2 cores)."""
    vectors = unit_vectors(2000, seed=1)
    authors = ["rare" if i % 200 == 0 else ("busy" if i % 3 else "other") for i in range(len(vectors))]
    db = database
    with db.connect() as conn:
        conn.execute("TRUNCATE authors, raw_documents, cleaned_documents, chunks CASCADE")
        ids = seed_chunks(conn, vectors, authors)
        conn.execute("ANALYZE chunks")
    return db, vectors, authors, ids


def _brute_force(vectors: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    distances = 1 - vectors @ query
    if mask is not None:
        distances = np.where(mask, distances, np.inf)
    return list(np.argsort(distances, kind="stable")[:k])


def test_exact_search_matches_brute_force(seeded) -> None:  # type: ignore[no-untyped-def]
    db, vectors, _, ids = seeded
    query = unit_vectors(1, seed=7)[0]
    with db.connect() as conn:
        hits = nearest(conn, query, k=10, exact=True)
    assert [h.chunk_id for h in hits] == [ids[i] for i in _brute_force(vectors, query, 10)]
    expected_scores = vectors[_brute_force(vectors, query, 10)] @ query
    assert np.allclose([h.score for h in hits], expected_scores, atol=1e-5)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_hnsw_search_recalls_the_true_neighbours(seeded) -> None:  # type: ignore[no-untyped-def]
    db, vectors, _, ids = seeded
    recalls = []
    with db.connect() as conn:
        for seed in range(10):
            query = vectors[seed * 37] + 0.3 * unit_vectors(1, seed=100 + seed)[0]
            query /= np.linalg.norm(query)
            truth = {ids[i] for i in _brute_force(vectors, query, 10)}
            got = {h.chunk_id for h in nearest(conn, query, k=10)}
            recalls.append(len(truth & got) / 10)
    assert np.mean(recalls) >= 0.95


def _plan(conn, query: np.ndarray, **filters: object) -> str:  # type: ignore[no-untyped-def]
    statements, params = vector_store.nearest_sql(conn, query, k=10, **filters)  # type: ignore[arg-type]
    for statement in statements[:-1]:
        conn.execute(statement)
    explain = psycopg_sql.SQL("EXPLAIN ") + statements[-1]
    return "\n".join(r[0] for r in conn.execute(explain, params).fetchall())


def test_unfiltered_search_uses_the_hnsw_index(seeded) -> None:  # type: ignore[no-untyped-def]
    db, *_ = seeded
    with db.connect() as conn:
        # 2,000 rows are few enough that a seq scan is cheaper; the benchmark shows the planner's own
        # choice at 100k rows. Here: the index is valid and usable for the query nearest() sends.
        conn.execute("SET LOCAL enable_seqscan = off")
        assert "chunks_embedding_hnsw" in _plan(conn, unit_vectors(1)[0])


@pytest.mark.parametrize("force_hnsw", [False, True], ids=["exact-for-few-rows", "hnsw-iterative-scan"])
def test_filtered_search_returns_k_rows_for_a_rare_author(seeded, force_hnsw: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, vectors, authors, ids = seeded
    mask = np.array([a == "rare" for a in authors])
    assert mask.sum() == 10
    query = unit_vectors(1, seed=3)[0]
    with db.connect() as conn:
        if force_hnsw:
            # Without the B-tree, and with the exact path for small filters turned off, the search must
            # filter an HNSW scan: only iterative scans give k rows then.
            monkeypatch.setattr(vector_store, "EXACT_BELOW_ROWS", 0)
            conn.execute("DROP INDEX chunks_author_kind")
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = _plan(conn, query, author="rare")
            assert "chunks_embedding_hnsw" in plan
        else:
            assert "chunks_embedding_hnsw" not in _plan(conn, query, author="rare")  # exact: 10 rows
        hits = nearest(conn, query, k=5, author="rare")
        conn.rollback()  # puts the dropped index back
    assert len(hits) == 5
    assert {h.author for h in hits} == {"rare"}
    assert [h.chunk_id for h in hits] == [ids[i] for i in _brute_force(vectors, query, 5, mask)]


def test_kind_filter_never_leaks_other_kinds(seeded) -> None:  # type: ignore[no-untyped-def]
    db, *_ = seeded
    with db.connect() as conn:
        assert nearest(conn, unit_vectors(1)[0], k=5, kinds=["post"]) == []
        assert len(nearest(conn, unit_vectors(1)[0], k=5, kinds=["article", "post"])) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [(np.zeros(128), "128 dimensions"), (np.full(384, np.nan), "NaN"), (np.zeros((2, 384)), "one vector")],
)
def test_bad_query_vectors_are_refused(db: Database, query: np.ndarray, message: str) -> None:
    with pytest.raises(TwinError, match=message), db.connect() as conn:
        nearest(conn, query)


def test_k_must_be_positive(db: Database) -> None:
    with pytest.raises(TwinError, match="k must be"), db.connect() as conn:
        nearest(conn, unit_vectors(1)[0], k=0)
