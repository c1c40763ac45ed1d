-- Every request the twin service answered (or refused): what was asked, what was retrieved, which release
-- answered, how long each stage took. The service's only writes to the warehouse. No foreign key to
-- authors: a request for an unknown author is traced too.
CREATE TABLE IF NOT EXISTS serving_traces (
    id                bigserial PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT now(),
    route             text NOT NULL,            -- /rag, /retrieve, /generate, /v1/chat/completions
    author            text,
    query             text,
    release           integer,                  -- the release that generated (NULL: retrieval only, base)
    chunk_ids         text[] NOT NULL DEFAULT '{}',
    scores            double precision[] NOT NULL DEFAULT '{}',
    best_similarity   double precision,         -- cosine of the best retrieved chunk: low = a content gap
    tokens_in         integer,
    tokens_out        integer,
    timings           jsonb NOT NULL DEFAULT '{}',  -- milliseconds per stage: retrieve, queue, first_token, generate
    latency_ms        double precision NOT NULL,
    status            integer NOT NULL,
    error             text
);
CREATE INDEX IF NOT EXISTS serving_traces_at ON serving_traces (at DESC);
CREATE INDEX IF NOT EXISTS serving_traces_author_at ON serving_traces (author, at DESC);
