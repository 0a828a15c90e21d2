-- What agents deliver besides their answer, and the session to resume.
ALTER TABLE agents ADD COLUMN session_id TEXT;
ALTER TABLE agents ADD COLUMN branch TEXT;
ALTER TABLE agents ADD COLUMN commits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN diff_stat TEXT;
ALTER TABLE agents ADD COLUMN prs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN cost_usd DOUBLE PRECISION;
ALTER TABLE agents ADD COLUMN turns BIGINT;

-- Pull requests opened on remotes that are not GitHub: kept here, listed by `murmur pr ls`.
CREATE TABLE pull_requests (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs (id),
    slug       TEXT NOT NULL,
    branch     TEXT NOT NULL,
    base       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    merged_at  TEXT
);
