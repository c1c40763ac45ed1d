-- Structure and full-text search: which cleaner judged each document, each chunk's place in its
-- document's outline (title and heading path: shown in results and put before the chunk when it is
-- embedded, never into the author's text), and a full-text index beside the vector one.

ALTER TABLE cleaned_documents ADD COLUMN IF NOT EXISTS cleaner_version integer NOT NULL DEFAULT 1;
ALTER TABLE cleaning_rejections ADD COLUMN IF NOT EXISTS cleaner_version integer NOT NULL DEFAULT 1;

-- The headings above the chunk, outermost first, and the exact text embedded before it.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS heading_path text[] NOT NULL DEFAULT '{}';
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS context text NOT NULL DEFAULT '';

-- Full text over the chunk and its context (a literal term: a command, an option, a placeholder).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english', context || ' ' || content)) STORED;
CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv);
