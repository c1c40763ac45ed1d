"""Small builders for store rows used across tests."""

from __future__ import annotations

import numpy as np
import psycopg

from llm_twin_assets.records import chunk_id, content_hash, document_id
from llm_twin_assets.store.upsert import UpsertResult, bulk_upsert

RAW_COLUMNS = ("id", "author", "url", "kind", "title", "content", "content_hash")


def add_author(conn: psycopg.Connection, slug: str) -> None:
    conn.execute(
        "INSERT INTO authors (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (slug, slug.title())
    )


def raw_row(author: str, url: str, content: str, kind: str = "article") -> tuple[object, ...]:
    return (document_id(author, url), author, url, kind, f"title of {url}", content, content_hash(content))


def upsert_raw(conn: psycopg.Connection, rows: list[tuple[object, ...]]) -> UpsertResult:
    return bulk_upsert(conn, "raw_documents", RAW_COLUMNS, rows, compare=("content_hash", "kind", "title"))


def seed_chunks(
    conn: psycopg.Connection, vectors: np.ndarray, authors: list[str], kind: str = "article"
) -> list[str]:
    """One document per author holding that author's vectors as chunks; returns chunk ids in order."""
    ids: list[str] = []
    docs: dict[str, str] = {}
    for slug in sorted(set(authors)):
        add_author(conn, slug)
        url = f"https://example.org/{slug}"
        doc = document_id(slug, url)
        docs[slug] = doc
        conn.execute(
            "INSERT INTO raw_documents (id, author, url, kind, content, content_hash) VALUES (%s,%s,%s,%s,%s,%s)",
            (doc, slug, url, kind, "x", content_hash("x")),
        )
        conn.execute(
            "INSERT INTO cleaned_documents (id, author, url, kind, content, content_hash, raw_content_hash, n_chars)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            (doc, slug, url, kind, "x", content_hash("x"), content_hash("x"), 1),
        )
    rows = []
    ordinals: dict[str, int] = {}
    for vector, slug in zip(vectors, authors, strict=True):
        n = ordinals.get(slug, 0)
        ordinals[slug] = n + 1
        text = f"{slug} chunk {n}"
        cid = chunk_id(docs[slug], n, content_hash(text))
        ids.append(cid)
        rows.append(
            (cid, docs[slug], slug, kind, n, text, content_hash(text), 3, vector.astype(np.float32), "test")
        )
    bulk_upsert(
        conn,
        "chunks",
        (
            "id",
            "document_id",
            "author",
            "kind",
            "ordinal",
            "content",
            "content_hash",
            "n_tokens",
            "embedding",
            "embedding_model",
        ),
        rows,
    )
    return ids


def unit_vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
