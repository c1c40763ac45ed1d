-- Which cleaned content (and chunking settings) a document's chunks were made from, so only changed
-- documents are re-chunked.
ALTER TABLE cleaned_documents ADD COLUMN IF NOT EXISTS chunks_key text;
CREATE INDEX IF NOT EXISTS chunks_author_unembedded ON chunks (author) WHERE embedding IS NULL;
