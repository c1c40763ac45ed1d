-- Tombstones: the documents a crawl removed (their link left the links file, or their source said they
-- are gone), with their cleaned rows and their chunks, embeddings included. They are moved here in the
-- transaction that removes them, kept LLM_TWIN_TOMBSTONE_DAYS days, then purged. A restored document
-- (`llm-twin author restore`, or its link crawled again) moves back with its chunks and vectors: nothing
-- is cleaned, chunked or embedded again when its content is unchanged. Nothing reads these tables but
-- the removal, the restore and the purge: features, retrieval, datasets and data versions see only the
-- live tables.

CREATE TABLE IF NOT EXISTS removed_raw_documents (
    id              text PRIMARY KEY,
    author          text NOT NULL REFERENCES authors (slug) ON DELETE CASCADE,
    url             text NOT NULL,
    kind            text NOT NULL,
    title           text,
    content         text NOT NULL,
    content_hash    text NOT NULL,
    fetched_at      timestamptz NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL,
    gone_crawls     integer NOT NULL DEFAULT 0,
    gone_since      timestamptz,
    source_link     text,
    removed_at      timestamptz NOT NULL DEFAULT now(),
    removal_reason  text NOT NULL CHECK (removal_reason IN ('unlisted', 'gone'))
);
CREATE INDEX IF NOT EXISTS removed_raw_documents_author_time ON removed_raw_documents (author, removed_at);

CREATE TABLE IF NOT EXISTS removed_cleaned_documents (
    id                text PRIMARY KEY REFERENCES removed_raw_documents (id) ON DELETE CASCADE,
    author            text NOT NULL,
    url               text NOT NULL,
    kind              text NOT NULL,
    title             text,
    content           text NOT NULL,
    content_hash      text NOT NULL,
    raw_content_hash  text NOT NULL,
    language          text,
    n_chars           integer NOT NULL,
    cleaned_at        timestamptz NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    chunks_key        text,
    updated_at        timestamptz NOT NULL,
    cleaner_version   integer NOT NULL DEFAULT 1
);

-- The embedding column has no declared dimension: a tombstone outlives a change of LLM_TWIN_EMBEDDING_DIM
-- (a vector of another dimension is not restored; its chunk is embedded again).
CREATE TABLE IF NOT EXISTS removed_chunks (
    id               text PRIMARY KEY,
    document_id      text NOT NULL REFERENCES removed_cleaned_documents (id) ON DELETE CASCADE,
    author           text NOT NULL,
    kind             text NOT NULL,
    ordinal          integer NOT NULL,
    content          text NOT NULL,
    content_hash     text NOT NULL,
    n_tokens         integer NOT NULL,
    embedding        vector,
    embedding_model  text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    char_start       integer,
    char_end         integer,
    heading_path     text[] NOT NULL DEFAULT '{}',
    context          text NOT NULL DEFAULT '',
    token_ids        bytea,
    tokenizer        text
);
CREATE INDEX IF NOT EXISTS removed_chunks_document ON removed_chunks (document_id);
