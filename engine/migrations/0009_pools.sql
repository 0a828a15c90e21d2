-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A pool's machines in use, across every process sharing the store: one row per agent (or gate
-- check) that holds a machine. A checkpoint that starts work inserts its rows only while the
-- pool has room, after locking the pool's row (so two servers never both take the last one).
CREATE TABLE pools (
    tenant  TEXT NOT NULL,
    name    TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE pool_claims (
    tenant     TEXT NOT NULL,
    pool       TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    agent      TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    owner      TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (tenant, pool, run_id, agent)
);
CREATE INDEX pool_claims_by_owner ON pool_claims (owner);
CREATE INDEX pool_claims_by_run ON pool_claims (run_id);
