-- Document kinds are data, not CHECK lists: the kinds a document may have are the rows of
-- document_kinds, and llm_twin_assets/kinds.py (the registry every module reads) must list the same
-- ones: the store refuses to start while a registered kind has no row here. A new kind is one
-- data-only migration: INSERT INTO document_kinds (kind, family) VALUES ('talk', 'prose');
CREATE TABLE IF NOT EXISTS document_kinds (
    kind    text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    family  text NOT NULL CHECK (family IN ('prose', 'code'))
);
INSERT INTO document_kinds (kind, family)
VALUES ('article', 'prose'), ('post', 'prose'), ('repository', 'code')
ON CONFLICT (kind) DO NOTHING;

-- Documents name a registered kind; a chunk's and a unit's kind is a copy of their document's (they are
-- removed with it), so those copies need no check of their own.
ALTER TABLE raw_documents DROP CONSTRAINT IF EXISTS raw_documents_kind_check;
ALTER TABLE raw_documents
    ADD CONSTRAINT raw_documents_kind_fkey FOREIGN KEY (kind) REFERENCES document_kinds (kind);
ALTER TABLE cleaned_documents DROP CONSTRAINT IF EXISTS cleaned_documents_kind_check;
ALTER TABLE cleaned_documents
    ADD CONSTRAINT cleaned_documents_kind_fkey FOREIGN KEY (kind) REFERENCES document_kinds (kind);
ALTER TABLE chunks DROP CONSTRAINT IF EXISTS chunks_kind_check;
ALTER TABLE chunk_units DROP CONSTRAINT IF EXISTS chunk_units_kind_check;
