-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A pool's machines are shared by every tenant (`max_vms` counts them all, and
-- `max_vms_per_tenant` each tenant's share), so claims on a pool are serialised by one row per
-- pool instead of one per tenant and pool.
DROP TABLE pools;
CREATE TABLE pool_locks (
    pool    TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
