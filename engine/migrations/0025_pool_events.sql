-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- What a cloud pool's provisioning ran into, for `murmur pool status`: a location skipped for
-- lack of capacity, a back-off, provisioning stopped by refused credentials, and a VM made.
-- The pool manager keeps no state the store lacks, so a restarted server (or another one)
-- and the CLI read the same story here.
CREATE TABLE pool_events (
    tenant   TEXT NOT NULL,
    pool     TEXT NOT NULL,
    -- A UUIDv7: unique across servers, and sorts by time.
    id       TEXT NOT NULL,
    at       TEXT NOT NULL,
    -- `capacity`, `backoff`, `stopped`, `resumed` or `provisioned`.
    kind     TEXT NOT NULL,
    -- The zone or subnet it was about, if one.
    location TEXT,
    message  TEXT NOT NULL,
    PRIMARY KEY (tenant, pool, id)
);
