-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    flight      TEXT NOT NULL,
    flight_path TEXT,
    source      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    inputs      TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX runs_by_created ON runs (tenant, created_at);

CREATE TABLE agents (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    slug        TEXT NOT NULL,
    position    BIGINT NOT NULL,
    state       TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    response    TEXT,
    error       TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, slug)
);

CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq    BIGINT NOT NULL,
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    slug   TEXT,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
