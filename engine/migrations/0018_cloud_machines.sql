-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Cloud machines: the VM behind a machine of a cloud pool, and the one-time bootstrap
-- credential its boot script carries. The machine itself is a row of `machines` like any
-- other; this table only adds what a provider and a first contact need.
CREATE TABLE cloud_machines (
    tenant               TEXT NOT NULL,
    machine_id           TEXT NOT NULL,
    pool                 TEXT NOT NULL,
    -- The provider's instance id (`i-…`, `zone/name`), known once it was created.
    instance_id          TEXT,
    location             TEXT,
    -- SHA-256 of the bootstrap credential, like API tokens; it registers this machine once,
    -- before `bootstrap_expires_at`, and never again (`bootstrap_used_at` is set then).
    bootstrap_hash       TEXT NOT NULL,
    bootstrap_expires_at TEXT NOT NULL,
    bootstrap_used_at    TEXT,
    created_at           TEXT NOT NULL,
    PRIMARY KEY (tenant, machine_id)
);
CREATE UNIQUE INDEX cloud_machines_by_bootstrap ON cloud_machines (bootstrap_hash);
CREATE INDEX cloud_machines_by_pool ON cloud_machines (tenant, pool);

-- Names of this store shared by every server on it: `cluster`, the value of the
-- `murmur:cluster` tag on every VM, so a server never touches another store's VMs.
CREATE TABLE cloud_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
