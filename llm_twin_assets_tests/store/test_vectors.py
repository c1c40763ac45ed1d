import threading

import numpy as np
import pytest
from psycopg import sql as psycopg_sql

from llm_twin_assets.errors import StoreError, TwinError
from llm_twin_assets.store import author_indexes as index_store
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
            monkeypatch.setattr(vector_store, "SHARED_EXACT_BELOW_ROWS", 0)
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


# --- path choice and the authors' own indexes, on a small clustered table of its own ---------------

TABLE = "vector_paths_test"


@pytest.fixture(scope="module")
def clustered(database: Database):  # type: ignore[no-untyped-def]
    """3,020 rows on six topics, built like the benchmark's: each row mixes two of its topic's 30
    sub-topics plus noise. "crowd" (2,000 rows) writes on topics 0-2, "busy" (1,000) on 3-4, "rare"
    (20) on 5; one row in ten is a "post". A table of its own (the columns nearest() reads), bulk-loaded
    and then indexed: about a second, where an HNSW insert a row would take many."""
    rng = np.random.default_rng(5)
    centres = unit_vectors(6, seed=11)
    subtopics = [centres[t] + 0.8 * unit_vectors(30, seed=20 + t) for t in range(6)]
    subtopics = [s / np.linalg.norm(s, axis=1, keepdims=True) for s in subtopics]

    def mix(topics: np.ndarray) -> np.ndarray:
        a = np.stack([subtopics[t][rng.integers(30)] for t in topics])
        b = np.stack([subtopics[t][rng.integers(30)] for t in topics])
        noise = rng.standard_normal((len(topics), 384)).astype(np.float32)
        v = 0.8 * a + 0.5 * b + 0.35 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    plan = [("crowd", (0, 1, 2), 2000), ("busy", (3, 4), 1000), ("rare", (5,), 20)]
    vectors = np.vstack([mix(rng.choice(topics, size=n)) for _, topics, n in plan])
    authors = np.array([author for author, _, n in plan for _ in range(n)])
    kinds = np.where(rng.random(len(vectors)) < 0.1, "post", "article")
    queries = {t: mix(np.full(12, t)) for t in range(6)}
    ids = [f"c{i:05d}" for i in range(len(vectors))]
    with database.connect(autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(
            f"CREATE TABLE {TABLE} (id text PRIMARY KEY, document_id text NOT NULL, author text NOT NULL,"
            " kind text NOT NULL, content text NOT NULL, embedding vector(384))"
        )
        with conn.cursor().copy(f"COPY {TABLE} FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "text", "text", "vector"])
            for i, vector in enumerate(vectors):
                copy.write_row((ids[i], f"d{i // 10}", authors[i], kinds[i], f"chunk {i}", vector))
        conn.execute(f"CREATE INDEX {TABLE}_author_kind ON {TABLE} (author, kind)")
        conn.execute(
            f"CREATE INDEX {TABLE}_embedding_hnsw ON {TABLE} USING hnsw"
            " ((embedding::halfvec(384)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)"
        )
        conn.execute(f"ANALYZE {TABLE}")
    yield database, vectors, authors, kinds, ids, queries
    with database.connect(autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


@pytest.fixture
def small_table_thresholds(monkeypatch):  # type: ignore[no-untyped-def]
    """The thresholds scaled to a 3,000-row table (they are measured at 100k rows): exact below 100
    rows for an author with an index; the shared-index rule keeps its own scaling with the table size."""
    monkeypatch.setattr(vector_store, "EXACT_BELOW_ROWS", 100)
    monkeypatch.setattr(index_store, "AUTHOR_INDEX_MIN_ROWS", 100)


def _table_plan(conn, query: np.ndarray, **filters: object) -> str:  # type: ignore[no-untyped-def]
    statements, params = vector_store.nearest_sql(conn, query, k=10, table=TABLE, **filters)  # type: ignore[arg-type]
    with conn.transaction():
        for statement in statements[:-1]:
            conn.execute(statement)
        explain = psycopg_sql.SQL("EXPLAIN ") + statements[-1]
        return "\n".join(r[0] for r in conn.execute(explain, params).fetchall())


def _author_indexes(conn) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass AND c.relname LIKE %s",
            (TABLE, f"{TABLE}_hnsw_author_%"),
        ).fetchall()
    ]


def test_path_follows_the_filters_selectivity(clustered, small_table_thresholds) -> None:  # type: ignore[no-untyped-def]
    db, *_, queries = clustered
    path = vector_store.search_path
    with db.connect(autocommit=True) as conn:
        index_store.drop_author_indexes(conn, table=TABLE)
        assert path(conn, table=TABLE) == vector_store.SHARED_INDEX  # unfiltered
        # A rare author: exact, read through the B-tree, whatever else exists.
        assert path(conn, author="rare", table=TABLE) == vector_store.EXACT
        assert "hnsw" not in _table_plan(conn, queries[5][0], author="rare")
        # Filters the shared index would walk: exact below 5% of 100k rows scaled by sqrt(rows / 100k)
        # (~870 rows here), the shared index above.
        assert path(conn, kinds=["post"], table=TABLE) == vector_store.EXACT  # ~300 rows
        assert path(conn, author="busy", table=TABLE) == vector_store.SHARED_INDEX  # 1,000 rows
        assert path(conn, author="crowd", table=TABLE) == vector_store.SHARED_INDEX
        # Once the author has their own index, it is the path; the planner takes that index.
        name = index_store.ensure_author_index(conn, "busy", table=TABLE)
        assert name == f"{TABLE}_hnsw_author_busy"
        for _ in range(8):  # the same answers once the driver has prepared the estimate's statement
            assert path(conn, author="busy", table=TABLE) == vector_store.AUTHOR_INDEX
            assert path(conn, author="rare", table=TABLE) == vector_store.EXACT
        with conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")  # 1,000 rows: a sort would be cheap too
            assert name in _table_plan(conn, queries[0][0], author="busy")
        # A kind filter on top of the author: still the author's index while it keeps enough rows.
        assert path(conn, author="busy", kinds=["article"], table=TABLE) == vector_store.AUTHOR_INDEX
        assert path(conn, author="busy", kinds=["post"], table=TABLE) == vector_store.EXACT  # ~100 rows
        index_store.drop_author_indexes(conn, table=TABLE)


def _truth(vectors, keep, query, k):  # type: ignore[no-untyped-def]
    return list(np.argsort(np.where(keep, 1 - vectors @ query, np.inf), kind="stable")[:k])


def test_off_topic_question_to_a_frequent_author_returns_the_true_nearest(  # type: ignore[no-untyped-def]
    clustered, monkeypatch
) -> None:
    """ "busy" holds a third of the rows; the questions are on crowd's subjects, which busy never writes
    about: on a shared index the walk starts among crowd's rows, far from any of busy's."""
    db, vectors, authors, kinds, ids, queries = clustered
    busy, busy_posts = authors == "busy", (authors == "busy") & (kinds == "post")
    off_topic = [q for t in (0, 1, 2) for q in queries[t][:4]]
    with db.connect(autocommit=True) as conn:
        index_store.drop_author_indexes(conn, table=TABLE)
        # At this size (1,000 rows) the search is exact.
        assert vector_store.search_path(conn, author="busy", table=TABLE) == vector_store.EXACT
        for query in off_topic:
            hits = nearest(conn, query, k=10, author="busy", table=TABLE)
            assert [h.chunk_id for h in hits] == [ids[i] for i in _truth(vectors, busy, query, 10)]
            hits = nearest(conn, query, k=5, author="busy", kinds=["post"], table=TABLE)
            assert [h.chunk_id for h in hits] == [ids[i] for i in _truth(vectors, busy_posts, query, 5)]
        # Where busy is large enough for an index of their own (here: made so), the walk covers busy's
        # rows only; a candidate list as large as busy's rows makes it exhaustive, hence exact.
        monkeypatch.setattr(vector_store, "EXACT_BELOW_ROWS", 100)
        assert index_store.ensure_author_index(conn, "busy", table=TABLE, min_rows=100) is not None
        try:
            assert vector_store.search_path(conn, author="busy", table=TABLE) == vector_store.AUTHOR_INDEX
            assert f"{TABLE}_hnsw_author_busy" in _table_plan(conn, off_topic[0], author="busy")
            for query in off_topic:
                hits = nearest(conn, query, k=10, author="busy", table=TABLE, ef_search=1000)
                assert [h.chunk_id for h in hits] == [ids[i] for i in _truth(vectors, busy, query, 10)]
                assert {h.author for h in hits} == {"busy"}
        finally:
            index_store.drop_author_indexes(conn, table=TABLE)


def test_author_index_is_built_once_safely(clustered) -> None:  # type: ignore[no-untyped-def]
    db, *_ = clustered
    ensure = index_store.ensure_author_index
    with db.connect(autocommit=True) as conn:
        index_store.drop_author_indexes(conn, table=TABLE)
        assert ensure(conn, "rare", table=TABLE) is None  # 20 rows: answered exactly, no index
        assert ensure(conn, "busy", table=TABLE, min_rows=1001) is None
        assert _author_indexes(conn) == []
        # Several runs at once: one builds, the others return at once; one valid index in the end.
        results: list[str | None] = []

        def build() -> None:
            with db.connect(autocommit=True) as own:
                results.append(ensure(own, "busy", table=TABLE, min_rows=100))

        threads = [threading.Thread(target=build) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        name = f"{TABLE}_hnsw_author_busy"
        assert name in results and set(results) <= {name, None}
        assert _author_indexes(conn) == [name]
        assert ensure(conn, "busy", table=TABLE, min_rows=100) == name  # idempotent
        assert index_store.author_index(conn, "busy", table=TABLE) == name

        # A build that cannot finish (a writer holds the table past the timeout) raises, and the next
        # call, once the writer is gone, replaces whatever the failed build left.
        with db.connect() as writer:
            writer.execute(f"UPDATE {TABLE} SET kind = kind WHERE id = 'c00000'")
            with pytest.raises(StoreError, match="crowd"):
                ensure(conn, "crowd", table=TABLE, min_rows=100, lock_timeout_s=0.2)
            writer.rollback()
        assert index_store.author_index(conn, "crowd", table=TABLE) is None
        assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)  # the caller's setting is back
        assert ensure(conn, "crowd", table=TABLE, min_rows=100) == f"{TABLE}_hnsw_author_crowd"
        assert sorted(index_store.drop_author_indexes(conn, table=TABLE)) == [
            f"{TABLE}_hnsw_author_busy",
            f"{TABLE}_hnsw_author_crowd",
        ]
    with db.connect() as conn, pytest.raises(TwinError, match="autocommit"):
        ensure(conn, "busy", table=TABLE)


def test_long_author_slugs_get_distinct_index_names() -> None:
    a, b = "x" * 70 + "a", "x" * 70 + "b"
    assert len(index_store.author_index_name(a).encode()) <= 63
    assert index_store.author_index_name(a) != index_store.author_index_name(b)
    assert index_store.author_index_name("maya") == "chunks_hnsw_author_maya"


def test_a_new_authors_searches_take_their_index_once_it_is_built(  # type: ignore[no-untyped-def]
    clustered, small_table_thresholds
) -> None:
    """A new author's rows are not in the planner's statistics yet (the path would stay exact); building
    their index refreshes them, so the next search walks it."""
    db, vectors, *_ = clustered
    with db.connect(autocommit=True) as conn:
        with conn.cursor().copy(f"COPY {TABLE} FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "text", "text", "vector"])
            for i, vector in enumerate(vectors[:300]):
                copy.write_row((f"n{i:05d}", "dn", "newcomer", "article", f"new {i}", vector))
        try:
            assert vector_store.search_path(conn, author="newcomer", table=TABLE) == vector_store.EXACT
            assert index_store.ensure_author_index(conn, "newcomer", table=TABLE) is not None
            assert vector_store.search_path(conn, author="newcomer", table=TABLE) == vector_store.AUTHOR_INDEX
        finally:
            index_store.drop_author_indexes(conn, table=TABLE)
            conn.execute(f"DELETE FROM {TABLE} WHERE author = 'newcomer'")
            conn.execute(f"ANALYZE {TABLE}")


def test_authors_indexes_stop_at_the_cap_and_the_largest_authors_get_them_first(clustered) -> None:  # type: ignore[no-untyped-def]
    db, *_ = clustered
    with db.connect(autocommit=True) as conn:
        index_store.drop_author_indexes(conn, table=TABLE)
        try:
            # Under a cap of 1, the larger author (crowd, 2,000 rows) gets it, busy (1,000) does not.
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(index_store, "MAX_AUTHOR_INDEXES", 1)
                built = index_store.ensure_author_indexes(conn, table=TABLE, min_rows=100)
                assert built == {"crowd": f"{TABLE}_hnsw_author_crowd", "busy": None}
                assert index_store.author_indexes(conn, TABLE) == [f"{TABLE}_hnsw_author_crowd"]
                assert index_store.ensure_author_index(conn, "crowd", table=TABLE, min_rows=100) is not None
            # Room again: busy gets theirs.
            assert index_store.ensure_author_index(conn, "busy", table=TABLE, min_rows=100, max_indexes=2)
            assert len(index_store.author_indexes(conn, TABLE)) == 2
        finally:
            index_store.drop_author_indexes(conn, table=TABLE)
