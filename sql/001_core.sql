-- Core schema: authors, raw and cleaned documents, chunks with their embeddings.
-- Ids are content-derived (see llm_twin_assets/store/ids.py), so every write is an idempotent upsert.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS authors (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9_-]*$'),
    name        text NOT NULL,
    links_hash  text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (author, canonical source URL).
CREATE TABLE IF NOT EXISTS raw_documents (
    id            text PRIMARY KEY,
    author        text NOT NULL REFERENCES authors (slug) ON DELETE CASCADE,
    url           text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('article', 'post', 'repository')),
    title         text,
    content       text NOT NULL,
    content_hash  text NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now(),
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (author, url)
);
CREATE INDEX IF NOT EXISTS raw_documents_author_kind ON raw_documents (author, kind);

-- One cleaned row per raw document (same id), recomputed only when the raw content changes.
CREATE TABLE IF NOT EXISTS cleaned_documents (
    id                text PRIMARY KEY REFERENCES raw_documents (id) ON DELETE CASCADE,
    author            text NOT NULL,
    url               text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('article', 'post', 'repository')),
    title             text,
    content           text NOT NULL,
    content_hash      text NOT NULL,
    raw_content_hash  text NOT NULL,
    language          text,
    n_chars           integer NOT NULL,
    cleaned_at        timestamptz NOT NULL DEFAULT now(),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS cleaned_documents_author_kind ON cleaned_documents (author, kind);

-- Chunk id = document id + ordinal + content hash. author/kind are copied for filtered search.
CREATE TABLE IF NOT EXISTS chunks (
    id               text PRIMARY KEY,
    document_id      text NOT NULL REFERENCES cleaned_documents (id) ON DELETE CASCADE,
    author           text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('article', 'post', 'repository')),
    ordinal          integer NOT NULL CHECK (ordinal >= 0),
    content          text NOT NULL,
    content_hash     text NOT NULL,
    n_tokens         integer NOT NULL,
    embedding        vector(384),
    embedding_model  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, ordinal)
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id);
-- A B-tree on author lets the planner answer a rare author's query exactly and fast.
CREATE INDEX IF NOT EXISTS chunks_author_kind ON chunks (author, kind);
-- HNSW over half-precision copies of the vectors: half the bytes to visit, so ~2x faster at the same
-- recall; search re-ranks its candidates with the full-precision column (bench/vector_search.py).
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks
    USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 128);
