-- API tokens: only a SHA-256 of the token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    hash       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- A retried start request with the same Idempotency-Key gets the run the first one created.
CREATE TABLE idempotency_keys (
    tenant     TEXT NOT NULL,
    key        TEXT NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
