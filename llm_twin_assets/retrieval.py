"""Retrieval over an author's writing: the one search everything downstream uses.

``search(query, author=None, kinds=None, k=10)`` embeds the query with the configured embedding model
and returns the nearest chunks with their scores and source URLs (see :mod:`.store.vectors` for the
index strategy: filtered searches still return k results).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import KINDS
from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store.database import Database, open_database
from llm_twin_assets.store.vectors import nearest

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    document_id: str
    document_url: str
    title: str | None
    author: str
    kind: str
    score: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Retriever:
    """A store and an embedding model, ready to answer many queries."""

    def __init__(self, database: Database, embedder: SentenceTransformer, dim: int = 384) -> None:
        self.database = database
        self.embedder = embedder
        self.dim = dim

    def embed(self, query: str):  # type: ignore[no-untyped-def]
        return self.embedder.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]

    def search(
        self, query: str, author: str | None = None, kinds: Sequence[str] | None = None, k: int = 10
    ) -> list[SearchHit]:
        if not query.strip():
            raise TwinError("the search query is empty")
        unknown_kinds = sorted(set(kinds or ()) - set(KINDS))
        if unknown_kinds:
            raise TwinError(f"unknown kind(s) {', '.join(unknown_kinds)}: use {', '.join(KINDS)}")
        vector = self.embed(query)
        with self.database.connect() as conn:
            if author is not None:
                require_author(conn, author)
            neighbours = nearest(conn, vector, k=k, author=author, kinds=kinds, dim=self.dim)
            documents = dict(
                (row[0], (row[1], row[2]))
                for row in conn.execute(
                    "SELECT id, url, title FROM cleaned_documents WHERE id = ANY(%s)",
                    ([n.document_id for n in neighbours],),
                ).fetchall()
            )
        return [
            SearchHit(
                chunk_id=n.chunk_id,
                document_id=n.document_id,
                document_url=documents[n.document_id][0],
                title=documents[n.document_id][1],
                author=n.author,
                kind=n.kind,
                score=round(n.score, 6),
                text=n.content,
            )
            for n in neighbours
            if n.document_id in documents
        ]


def require_author(conn: psycopg.Connection, author: str) -> None:
    """An author the store does not know is an error that names it (not an empty result)."""
    if conn.execute("SELECT 1 FROM authors WHERE slug = %s", (author,)).fetchone():
        return
    known = [r[0] for r in conn.execute("SELECT slug FROM authors ORDER BY slug LIMIT 20").fetchall()]
    raise TwinError(
        f"unknown author {author!r}: the store has "
        + (f"{', '.join(known)}" if known else "no authors yet (materialize raw_documents first)")
    )


_RETRIEVERS: dict[tuple[str | None, str, str], Retriever] = {}


def retriever(settings: TwinSettings | None = None) -> Retriever:
    """A cached Retriever for these settings (one model load per process)."""
    from llm_twin_assets.embeddings import load_embedder

    settings = settings or get_settings()
    key = (settings.database_url, str(settings.home), settings.embedding_model)
    if key not in _RETRIEVERS:
        _RETRIEVERS[key] = Retriever(open_database(settings), load_embedder(settings), settings.embedding_dim)
    return _RETRIEVERS[key]


def search(
    query: str,
    author: str | None = None,
    kinds: Sequence[str] | None = None,
    k: int = 10,
    *,
    settings: TwinSettings | None = None,
) -> list[SearchHit]:
    """The ``k`` chunks nearest to ``query``, optionally of one author and of some kinds."""
    return retriever(settings).search(query, author=author, kinds=kinds, k=k)
