-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Runs waiting for machines of a full pool, oldest first: a run may take a machine only when no
-- older run is waiting for it, so free machines go to the oldest waiting run across servers.
CREATE TABLE pool_waiters (
    tenant         TEXT NOT NULL,
    pool           TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    run_created_at TEXT NOT NULL,
    wants          BIGINT NOT NULL,
    owner          TEXT NOT NULL,
    holder         TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    PRIMARY KEY (tenant, pool, run_id)
);
CREATE INDEX pool_waiters_by_owner ON pool_waiters (owner);
