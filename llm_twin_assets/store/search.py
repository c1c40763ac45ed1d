"""A search as PostgreSQL runs it, in one statement: the vector ranking of chunks and their retrieval units
(``store.vectors`` finds the nearest, through the right index), the full-text ranking, their fusion by
reciprocal rank with a per-document decay, and each result's matched unit; the author lookups of
self-query. What the options mean and how they were chosen: ``retrieval`` and ``bench/retrieval.py``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from llm_twin_assets.errors import TwinError
from llm_twin_assets.store.vectors import nearest_sql, search_filters

MAX_K = 100
TEXT_RANKING = sql.SQL(
    # The question parsed as users type (quotes make phrases, -word excludes); its terms.
    "WITH asked AS (SELECT websearch_to_tsquery('english', %s) AS strict),"
    " terms AS (SELECT DISTINCT t.lexeme FROM asked, unnest(to_tsvector('english', %s)) t),"
    # How often each term is in a chunk, from the planner's statistics on chunks.tsv (ANALYZE keeps them).
    " seen AS (SELECT e.lexeme, e.freq FROM pg_stats s,"
    "  unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) e(lexeme, freq)"
    "  WHERE s.schemaname = current_schema() AND s.tablename = 'chunks' AND s.attname = 'tsv'),"
    " weighted AS (SELECT to_tsquery('simple', quote_literal(t.lexeme)) AS q,"
    "  coalesce(seen.freq, 0) * (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass) AS rows,"
    "  ln(1.0 / coalesce(seen.freq, (SELECT min(freq) / 2 FROM seen), 0.5)) AS idf"
    "  FROM terms t LEFT JOIN seen USING (lexeme)),"
    # What finds chunks: each informative term (a question holds words its answer does not); the question
    # as written when it excludes a word or has no informative term.
    " probes AS (SELECT w.q, w.idf FROM weighted w, asked a WHERE w.rows <= %s AND a.strict::text NOT LIKE '%%!%%'"
    "  UNION ALL SELECT a.strict, 1.0 FROM asked a WHERE a.strict::text <> '' AND (a.strict::text LIKE '%%!%%'"
    "   OR NOT EXISTS (SELECT 1 FROM weighted w WHERE w.rows <= %s))),"
    # Each probe through the GIN index; the chunks holding the rarest terms first.
    " hits AS (SELECT c.id, p.idf FROM probes p CROSS JOIN LATERAL (SELECT id FROM chunks WHERE tsv @@ p.q AND {where}) c),"
    " found AS (SELECT id FROM hits GROUP BY id ORDER BY sum(idf) DESC, id LIMIT %s),"
    # The few chunks found are scored on every term of the question, rare and common alike.
    " matching AS (SELECT CASE WHEN a.strict::text LIKE '%%!%%' OR NOT EXISTS (SELECT 1 FROM weighted)"
    "  THEN a.strict ELSE (SELECT string_agg(q::text, ' | ') FROM weighted)::tsquery END AS q FROM asked a),"
    " scored AS (SELECT f.id, (SELECT coalesce(sum(w.idf), 0) FROM weighted w WHERE c.tsv @@ w.q) AS held,"
    "  ts_rank_cd(c.tsv, m.q) AS close FROM found f JOIN chunks c ON c.id = f.id, matching m)"
    # Ties (the same terms held) broken by how close together they are.
    " SELECT id, NULL::float8 AS distance, ROW_NUMBER() OVER (ORDER BY held + 0.1 * close DESC, id) AS rank"
    " FROM scored WHERE held >= %s * (SELECT sum(idf) FROM weighted)"
    " ORDER BY held + 0.1 * close DESC, id LIMIT %s"
)
"""The full-text ranking: chunks holding the question's informative terms (those in at most
``max_term_rows`` chunks), scored by the rarity of the terms they hold (inverse frequency,
read from PostgreSQL's own statistics of ``chunks.tsv``: a rare literal term like a command name
outweighs the common words around it), ties broken by ``ts_rank_cd`` (terms close together). The
informative terms find the candidates, each through the GIN index on its own (a term in a third of the
chunks would bring a third of the table); the best few hundred are then scored on every term. ``websearch_to_tsquery`` parses any user text safely; a question that excludes a
word (``-word``), or holds no informative term, is matched as written."""


@dataclass(frozen=True)
class SearchOptions:
    """How one search ranks; every field is measured in ``bench/retrieval.py``."""

    mode: Literal["hybrid", "vector", "text"] = "hybrid"
    candidates: int = 50
    """Chunks each ranking contributes to the fusion (at least k)."""
    rrf_k: int = 20
    """Reciprocal-rank fusion constant: score = sum of weight / (rrf_k + rank) over the rankings."""
    text_weight: float = 0.5
    """The full-text ranking's weight in the fusion (the vector ranking's is 1)."""
    min_text_share: float = 0.35
    """A chunk enters the full-text ranking only if the terms it holds carry this share of the question's
    term weight: one common word in common is no evidence."""
    max_term_rows: int = 1_000
    """A term in more chunks than this (by the statistics) does not bring chunks into the full-text
    ranking (it still counts in their score): what keeps it fast on a large store; on a small one every
    term does."""
    same_document_decay: float = 0.8
    """Diversity: a document's second chunk counts this much of its score, its third this squared...
    (1.0: none), so one long page does not fill every slot while a page that answers twice still can."""
    max_per_document: int | None = None
    """A hard limit on the chunks of one document in the results (None: only the decay)."""
    self_query: bool = True
    """Restrict to an author the question names, when no author is given."""
    rerank_depth: int = 30
    """With a reranker configured: how many fused results it re-scores (the best k of them are kept)."""
    units: bool = True
    """Small-to-big: rank the chunks' retrieval units too (list items, table rows, sentence groups:
    ``chunk_units``, sql/011), each scored for its chunk, and mark in each result the unit of its chunk
    closest to the question (``SearchHit.unit``). False: chunks alone, as before units."""
    unit_fusion: Literal["max", "rank"] = "max"
    """How units count, with a vector ranking: "max" — a chunk's distance in the vector ranking is the
    smallest of its own and its units' (max similarity: aggregation to the parent); "rank" — the units
    make a ranking of their own (each chunk ranked by its best unit) fused with the others (by RRF, at
    ``unit_weight``)."""
    unit_candidates: int = 50
    """Units the vector search of units brings (at least k); their chunks enter the fusion."""
    unit_weight: float = 1.0
    """With ``unit_fusion="rank"``: the units ranking's weight in the fusion."""


def search_sql(
    conn: psycopg.Connection,
    query: str,
    vector: Any,
    *,
    author: str | None,
    kinds: Sequence[str] | None,
    k: int,
    options: SearchOptions,
    dim: int,
) -> tuple[list[sql.Composed | sql.SQL], list[object]]:
    """The statements of one search (settings first, the query last) and the query's parameters.

    Every mode returns the same columns: chunk id, document id, url, title, heading path, author, kind,
    score, cosine distance (or NULL), text, vector rank, text rank, unit rank, chunk start, chunk end, and
    the matched unit's id, text, start, end and cosine distance (NULLs when none).

    Units (``options.units``): the units nearest the query are found like chunks (:func:`nearest_sql` on
    ``chunk_units``: the same paths, filters and indexes) and aggregated to their chunk (its best unit);
    with ``unit_fusion="max"`` that joins the vector ranking (a chunk's distance: the smaller of its own
    and its best unit's), with ``"rank"`` it is a ranking of its own in the fusion. Full text stays on
    the chunks (a chunk's text holds its units' words)."""
    n = max(k, options.candidates)
    where, filter_params = search_filters(author, kinds)
    ranked: list[tuple[str, sql.Composable]] = []
    statements: list[sql.Composed | sql.SQL] = []
    params: list[object] = []
    if options.mode in ("hybrid", "vector"):
        ranked, statements, params = _vector_rankings(
            conn, vector, author=author, kinds=kinds, k=k, n=n, options=options, dim=dim
        )
    if options.mode in ("hybrid", "text"):
        ranked.append(("text", TEXT_RANKING.format(where=where)))
        common = options.max_term_rows
        params += [query, query, common, common, *filter_params, 4 * n, options.min_text_share, n]
    score = _fused_score(options)
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name} AS ranking, id, distance, rank FROM ({ranking}) {alias}").format(
            name=sql.Literal(name), ranking=ranking, alias=sql.Identifier(f"r_{name}")
        )
        for name, ranking in ranked
    )
    cap = options.max_per_document or MAX_K
    marked, unit_columns, unit_params = _matched_unit(options, query, vector)
    statement = sql.SQL(
        "WITH found AS ({union}),"
        " fused AS (SELECT id, ({score})::float8 AS score, min(distance) AS distance,"
        "  min(rank) FILTER (WHERE ranking = 'vector') AS vector_rank,"
        "  min(rank) FILTER (WHERE ranking = 'text') AS text_rank,"
        "  min(rank) FILTER (WHERE ranking = 'unit') AS unit_rank FROM found GROUP BY id),"
        " placed AS (SELECT f.id, f.distance, f.vector_rank, f.text_rank, f.unit_rank, c.document_id,"
        "  ROW_NUMBER() OVER (PARTITION BY c.document_id ORDER BY f.score DESC, f.id) AS nth,"
        "  f.score * power(%s::float8, (ROW_NUMBER() OVER (PARTITION BY c.document_id"
        "   ORDER BY f.score DESC, f.id) - 1)::float8) AS score"
        "  FROM fused f JOIN chunks c ON c.id = f.id)"
        " SELECT c.id, c.document_id, d.url, d.title, c.heading_path, c.author, c.kind, p.score, p.distance,"
        "  c.content, p.vector_rank, p.text_rank, p.unit_rank, c.char_start, c.char_end{unit_columns}"
        " FROM placed p JOIN chunks c ON c.id = p.id JOIN cleaned_documents d ON d.id = c.document_id"
        "{marked} WHERE p.nth <= %s ORDER BY p.score DESC, c.id LIMIT %s"
    ).format(union=union, score=score, unit_columns=unit_columns, marked=marked)
    return [*statements, statement], [*params, options.same_document_decay, *unit_params, cap, k]


def _fused_score(options: SearchOptions) -> sql.Composable:
    """A chunk's score over its rankings: reciprocal-rank fusion (text and unit rankings weighted), or
    the cosine similarity when the vector ranking is the only one."""
    if options.mode == "vector":
        return sql.SQL("max(1.0 - distance)")
    return sql.SQL(
        "sum(CASE ranking WHEN 'text' THEN {w} WHEN 'unit' THEN {u} ELSE 1.0 END / ({k} + rank))"
    ).format(
        w=sql.Literal(float(options.text_weight)),
        u=sql.Literal(float(options.unit_weight)),
        k=sql.Literal(options.rrf_k),
    )


def _matched_unit(
    options: SearchOptions, query: str, vector: Any
) -> tuple[sql.Composable, sql.Composable, list[object]]:
    """The join that reads, for each result's chunk, its unit that matched (the closest to the query;
    text mode: the one holding most of its terms), its columns and its parameters; NULLs without units.
    Read for the k results only, through the units' chunk index."""
    if not options.units:
        return sql.SQL(""), sql.SQL(", NULL, NULL, NULL, NULL, NULL"), []
    columns = sql.SQL(", m.id, m.content, m.char_start, m.char_end, m.distance")
    if options.mode == "text":
        join = sql.SQL(
            " LEFT JOIN LATERAL (SELECT u.id, u.content, u.char_start, u.char_end, NULL::float8 AS distance"
            "  FROM chunk_units u WHERE u.chunk_id = c.id ORDER BY ts_rank_cd(u.tsv, (SELECT"
            "  coalesce(string_agg(quote_literal(t.lexeme), ' | '), '')::tsquery"
            "  FROM unnest(to_tsvector('english', %s)) t)) DESC, u.char_start LIMIT 1) m ON true"
        )
        return join, columns, [query]
    join = sql.SQL(
        " LEFT JOIN LATERAL (SELECT u.id, u.content, u.char_start, u.char_end,"
        "  u.embedding <=> %s AS distance FROM chunk_units u"
        "  WHERE u.chunk_id = c.id AND u.embedding IS NOT NULL ORDER BY 5, u.id LIMIT 1) m ON true"
    )
    return join, columns, [vector]


_CHUNK_RANKING = sql.SQL("SELECT id, distance, ROW_NUMBER() OVER (ORDER BY distance, id) AS rank FROM ({}) v")
_UNIT_RANKING = sql.SQL(
    "SELECT chunk_id AS id, min(distance) AS distance,"
    " ROW_NUMBER() OVER (ORDER BY min(distance), chunk_id) AS rank FROM ({}) u GROUP BY chunk_id"
)
_CHUNK_OR_UNIT_RANKING = sql.SQL(
    "SELECT id, min(distance) AS distance, ROW_NUMBER() OVER (ORDER BY min(distance), id) AS rank FROM ("
    " SELECT id, distance FROM ({chunks}) v UNION ALL SELECT chunk_id, distance FROM ({units}) u) b GROUP BY id"
)


def _vector_rankings(
    conn: psycopg.Connection,
    vector: Any,
    *,
    author: str | None,
    kinds: Sequence[str] | None,
    k: int,
    n: int,
    options: SearchOptions,
    dim: int,
) -> tuple[list[tuple[str, sql.Composable]], list[sql.Composed | sql.SQL], list[object]]:
    """The vector side of a search: its rankings ('vector', and 'unit' with ``unit_fusion="rank"``), the
    statements to run before the query (index settings) and the parameters, in the query's order."""
    vector_statements, params = nearest_sql(
        conn, vector, k=n, author=author, kinds=kinds, columns="id", dim=dim
    )
    statements, chunks = vector_statements[:-1], vector_statements[-1]
    if not options.units:
        only: list[tuple[str, sql.Composable]] = [("vector", _CHUNK_RANKING.format(chunks))]
        return only, statements, params
    unit_statements, unit_params = nearest_sql(
        conn,
        vector,
        k=max(k, options.unit_candidates),
        author=author,
        kinds=kinds,
        table="chunk_units",
        columns="id, chunk_id",
        dim=dim,
    )
    statements, params = [*statements, *unit_statements[:-1]], [*params, *unit_params]
    units = unit_statements[-1]
    ranked: list[tuple[str, sql.Composable]]
    if options.unit_fusion == "max":  # the vector ranking: each chunk at its best (it or a unit)
        ranked = [("vector", _CHUNK_OR_UNIT_RANKING.format(chunks=chunks, units=units))]
    else:
        ranked = [("vector", _CHUNK_RANKING.format(chunks)), ("unit", _UNIT_RANKING.format(units))]
    return ranked, statements, params


def search_rows(
    conn: psycopg.Connection,
    query: str,
    vector: Any,
    *,
    author: str | None,
    kinds: Sequence[str] | None,
    k: int,
    options: SearchOptions,
    dim: int,
) -> list[tuple[Any, ...]]:
    """Run one search (:func:`search_sql`) in a transaction of its own (its settings stay scoped to it);
    the rows, in the columns :func:`search_sql` names."""
    statements, params = search_sql(
        conn, query, vector, author=author, kinds=kinds, k=k, options=options, dim=dim
    )
    with conn.transaction():  # SET LOCAL stays scoped to this search
        for statement in statements[:-1]:
            conn.execute(statement)
        return conn.execute(statements[-1], params).fetchall()


def require_author(conn: psycopg.Connection, author: str) -> None:
    """An author the store does not know is an error that names it (not an empty result)."""
    if conn.execute("SELECT 1 FROM authors WHERE slug = %s", (author,)).fetchone():
        return
    known = [r[0] for r in conn.execute("SELECT slug FROM authors ORDER BY slug LIMIT 20").fetchall()]
    raise TwinError(
        f"unknown author {author!r}: the store has "
        + (f"{', '.join(known)}" if known else "no authors yet (materialize raw_documents first)")
    )


def named_author(conn: psycopg.Connection, query: str) -> str | None:
    """The one author whose full name or slug the question names (whole words, any case), if exactly one
    is named; otherwise None (every author is searched)."""
    lowered = query.casefold()
    named = {
        slug
        for slug, name in conn.execute("SELECT slug, name FROM authors").fetchall()
        if any(
            re.search(rf"(?<!\w){re.escape(term.casefold())}(?!\w)", lowered)
            for term in (name, slug)
            if term and len(term) > 2
        )
    }
    return named.pop() if len(named) == 1 else None
