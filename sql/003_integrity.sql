-- Integrity: when stored content last changed, removal only on the source's word, what cleaning
-- rejected (and why), the teacher's replies, and where each chunk lies in its document.

-- fetched_at / cleaned_at now say when the stored content last changed; updated_at when any stored
-- field (content, kind, title) did. A re-run on unchanged input moves neither.
ALTER TABLE raw_documents ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
-- Consecutive crawls on which the source said the document is gone (HTTP 404/410, a deleted draft):
-- it is removed only after LLM_TWIN_GONE_CRAWLS_TO_REMOVE of them; any crawl that finds it resets this.
ALTER TABLE raw_documents ADD COLUMN IF NOT EXISTS gone_crawls integer NOT NULL DEFAULT 0;
ALTER TABLE raw_documents ADD COLUMN IF NOT EXISTS gone_since timestamptz;
ALTER TABLE cleaned_documents ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
-- The chunk is content[char_start:char_end] of its cleaned document (Python string offsets).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS char_start integer;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS char_end integer;

-- A raw document cleaning did not keep, judged on this raw content and kind: it is not cleaned again
-- until either changes. A duplicate names the kept document it repeats; when that one changes or goes,
-- the duplicate is judged again (ON DELETE CASCADE drops the rejection).
CREATE TABLE IF NOT EXISTS cleaning_rejections (
    id                text PRIMARY KEY REFERENCES raw_documents (id) ON DELETE CASCADE,
    author            text NOT NULL,
    url               text NOT NULL,
    kind              text NOT NULL,
    raw_content_hash  text NOT NULL,
    reason            text NOT NULL CHECK (reason IN ('duplicate', 'empty', 'damaged', 'unknown_kind')),
    detail            text NOT NULL,
    duplicate_of      text REFERENCES cleaned_documents (id) ON DELETE CASCADE,
    clean_hash        text,
    rejected_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cleaning_rejections_author ON cleaning_rejections (author);
CREATE INDEX IF NOT EXISTS cleaned_documents_author_hash ON cleaned_documents (author, content_hash);

-- What a teacher answered to one prompt: a dataset rebuilt after one new post asks only about the new
-- passages. The key hashes the teacher, the prompt version, the generation budget and the messages.
CREATE TABLE IF NOT EXISTS teacher_replies (
    key             text PRIMARY KEY,
    teacher         text NOT NULL,
    prompt_version  text NOT NULL,
    reply           text NOT NULL,
    finished        boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The links-file entry a document came from, as a column: removal is decided per link.
ALTER TABLE raw_documents ADD COLUMN IF NOT EXISTS source_link text;
UPDATE raw_documents SET source_link = metadata->>'source_link' WHERE source_link IS NULL;
CREATE INDEX IF NOT EXISTS raw_documents_author_source ON raw_documents (author, source_link);
