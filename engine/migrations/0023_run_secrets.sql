-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Secrets given to one run's agents for that run's lifetime only (`murmur spawn -e NAME`),
-- besides the workspace's `secrets:`. Names only: values stay in `secrets`, encrypted. The rows
-- are written in the transaction that creates the run, so its first attempt already has them.
CREATE TABLE run_secrets (
    tenant TEXT NOT NULL,
    run_id TEXT NOT NULL,
    name   TEXT NOT NULL,
    PRIMARY KEY (tenant, run_id, name)
);
