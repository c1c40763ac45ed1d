"""Reads of an author's cleaned documents and name, for the dataset builders."""

from __future__ import annotations

import psycopg

from llm_twin_assets.records import Document


def author_exists(conn: psycopg.Connection, author: str) -> bool:
    return conn.execute("SELECT 1 FROM authors WHERE slug = %s", (author,)).fetchone() is not None


def author_name(conn: psycopg.Connection, author: str) -> str:
    row = conn.execute("SELECT name FROM authors WHERE slug = %s", (author,)).fetchone()
    return str(row[0]) if row else author


def cleaned_documents_of(conn: psycopg.Connection, author: str) -> list[Document]:
    rows = conn.execute(
        "SELECT id, url, kind, coalesce(title, ''), content, coalesce(metadata->'headings', '[]'::jsonb)"
        " FROM cleaned_documents WHERE author = %s ORDER BY id",
        (author,),
    ).fetchall()
    return [
        Document(doc_id, url, kind, title, content, tuple((h[0], h[1], h[2]) for h in headings))
        for doc_id, url, kind, title, content, headings in rows
    ]
