-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Machines, event-sourced like runs: the row is the current state (checked and bumped by
-- `version` on every change), `machine_events` the history that led there. The transition
-- table lives in the engine (machine/table.rs); the database only keeps what it allowed.
CREATE TABLE machines (
    tenant           TEXT NOT NULL,
    id               TEXT NOT NULL,
    pool             TEXT NOT NULL,
    placement        TEXT NOT NULL,
    -- The provider's name for it (an instance id, a worker's host and pid); known once provisioned.
    provider_id      TEXT,
    state            TEXT NOT NULL,
    -- The agent it holds (busy, sleeping, waking, lost), as its run and slug.
    agent_run_id     TEXT,
    agent_slug       TEXT,
    -- A worker's ephemeral public key, made in memory when it registered.
    public_key       TEXT,
    -- The machine's own credential, as a SHA-256 like API tokens; NULL once revoked.
    credential_hash  TEXT,
    -- A worker's heartbeat lease: past it the machine is lost.
    lease_expires_at TEXT,
    last_seen_at     TEXT,
    created_at       TEXT NOT NULL,
    version          BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX machines_by_pool ON machines (tenant, pool, state, created_at);
CREATE INDEX machines_by_state ON machines (tenant, state, lease_expires_at);
CREATE UNIQUE INDEX machines_by_credential ON machines (credential_hash);

CREATE TABLE machine_events (
    tenant     TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    at         TEXT NOT NULL,
    event      TEXT NOT NULL,
    PRIMARY KEY (tenant, machine_id, seq)
);
