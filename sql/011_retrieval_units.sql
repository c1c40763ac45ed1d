-- Retrieval units (small units indexed, whole passages returned): each list item, table row, sentence
-- group or short paragraph of a chunk is a unit with its own embedding and full-text vector, pointing to
-- its chunk. Search ranks units too and returns their chunk (the passage), with the unit that matched.
-- A unit is a span of its cleaned document, like a chunk: content = document[char_start:char_end], and
-- it lies inside its chunk. Built and embedded by the chunk_embeddings asset, only for chunks whose
-- units_key (what their units were made from) changed; gone with their chunk (ON DELETE CASCADE).

CREATE TABLE IF NOT EXISTS chunk_units (
    id               text PRIMARY KEY,
    chunk_id         text NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    document_id      text NOT NULL,
    author           text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('article', 'post', 'repository')),
    ordinal          integer NOT NULL CHECK (ordinal >= 0),
    char_start       integer NOT NULL,
    char_end         integer NOT NULL CHECK (char_end > char_start),
    content          text NOT NULL,
    -- a digest of what is embedded (the chunk's context above the unit's text): a new one, a new vector
    embedded_hash    text NOT NULL,
    embedding        vector(384),
    embedding_model  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    tsv              tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX IF NOT EXISTS chunk_units_chunk ON chunk_units (chunk_id);
CREATE INDEX IF NOT EXISTS chunk_units_author_kind ON chunk_units (author, kind);
CREATE INDEX IF NOT EXISTS chunk_units_author_unembedded ON chunk_units (author) WHERE embedding IS NULL;
CREATE INDEX IF NOT EXISTS chunk_units_embedding_hnsw ON chunk_units
    USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 128);
CREATE INDEX IF NOT EXISTS chunk_units_tsv ON chunk_units USING gin (tsv);

-- What a chunk's units were made from (the units version, the chunk's span, kind and context); NULL: none
-- made yet. A chunk with a single unit gets no row in chunk_units (the chunk is its own unit).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS units_key text;

-- Tombstones: units move with their chunk (sql/008), vectors included.
ALTER TABLE removed_chunks ADD COLUMN IF NOT EXISTS units_key text;
CREATE TABLE IF NOT EXISTS removed_chunk_units (
    id               text PRIMARY KEY,
    chunk_id         text NOT NULL REFERENCES removed_chunks (id) ON DELETE CASCADE,
    document_id      text NOT NULL,
    author           text NOT NULL,
    kind             text NOT NULL,
    ordinal          integer NOT NULL,
    char_start       integer NOT NULL,
    char_end         integer NOT NULL,
    content          text NOT NULL,
    embedded_hash    text NOT NULL,
    embedding        vector,
    embedding_model  text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS removed_chunk_units_chunk ON removed_chunk_units (chunk_id);
