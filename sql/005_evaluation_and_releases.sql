-- Evaluations of an author's twin against its base model, and the releases they allowed.

-- One row per evaluation: the model versions, the exact test data and the metric code it measured
-- (all part of its id, so the same inputs are never evaluated twice) and the gate's decision.
CREATE TABLE IF NOT EXISTS evaluations (
    id                  text PRIMARY KEY,
    author              text NOT NULL REFERENCES authors (slug) ON DELETE CASCADE,
    base_model          text NOT NULL,
    sft_version         text NOT NULL,
    dpo_version         text NOT NULL,
    instruct_version    text NOT NULL,
    preference_version  text NOT NULL,
    examples            integer NOT NULL CHECK (examples > 0),
    examples_key        text NOT NULL,        -- the generated answers per example (artifact store)
    settings            jsonb NOT NULL,       -- generation, retrieval and metric settings
    classifier          jsonb NOT NULL,       -- the authorship classifier: held-out AUC, sizes, reliable
    gate                jsonb NOT NULL,       -- margins, measured differences, reasons
    gate_passed         boolean NOT NULL,
    evaluated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS evaluations_author_time ON evaluations (author, evaluated_at DESC);

-- One row per (evaluation, model, metric): written with its evaluation, in the same transaction.
CREATE TABLE IF NOT EXISTS evaluation_metrics (
    evaluation_id  text NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    author         text NOT NULL,
    model          text NOT NULL,          -- base, sft, twin, base+rag, sft+rag, twin+rag, retrieval
    version        text NOT NULL,
    metric         text NOT NULL,
    value          double precision,       -- NULL: not measurable (the reason is in the evaluation)
    evaluated_at   timestamptz NOT NULL,
    PRIMARY KEY (evaluation_id, model, metric)
);
CREATE INDEX IF NOT EXISTS evaluation_metrics_author ON evaluation_metrics (author, model, metric);

-- Releases: immutable, numbered per author; each names the evaluation whose gate it passed.
CREATE TABLE IF NOT EXISTS releases (
    author              text NOT NULL REFERENCES authors (slug) ON DELETE CASCADE,
    release             integer NOT NULL CHECK (release > 0),
    base_model          text NOT NULL,
    sft_version         text NOT NULL,
    dpo_version         text NOT NULL,
    instruct_version    text NOT NULL,
    preference_version  text NOT NULL,
    evaluation_id       text NOT NULL REFERENCES evaluations (id),
    released_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (author, release),
    UNIQUE (author, dpo_version)
);

-- The release each author serves now; a rollback points it at an older release.
CREATE TABLE IF NOT EXISTS current_releases (
    author      text PRIMARY KEY REFERENCES authors (slug) ON DELETE CASCADE,
    release     integer NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL,             -- 'released' or 'rollback'
    FOREIGN KEY (author, release) REFERENCES releases (author, release)
);
