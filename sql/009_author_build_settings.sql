-- An author's build settings (the links file's `build:` section, validated against each asset's config),
-- as last recorded by the `build_settings` asset. Every trigger (sensor, schedule, automation, a launch
-- from the UI, the CLI) builds the author with these; `digest` is the asset's data version, so a change
-- is acted on by automation once.
CREATE TABLE IF NOT EXISTS author_build_settings (
    author       text PRIMARY KEY REFERENCES authors (slug) ON DELETE CASCADE,
    settings     jsonb NOT NULL,
    digest       text NOT NULL,
    links_file   text,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
