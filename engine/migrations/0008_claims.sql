-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Claims: an Idempotency-Key or a webhook delivery starts its runs once, however many requests
-- or servers see it. The primary key decides between concurrent claimants; the claim is inserted
-- in the transaction that creates its runs, so it is never seen without them.
CREATE TABLE claims (
    tenant     TEXT NOT NULL,
    key        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- The runs a claim started, in order (a webhook delivery starts one per matching flight).
CREATE TABLE claimed_runs (
    tenant   TEXT NOT NULL,
    key      TEXT NOT NULL,
    position BIGINT NOT NULL,
    run_id   TEXT NOT NULL REFERENCES runs (id),
    flight   TEXT NOT NULL,
    PRIMARY KEY (tenant, key, position)
);

-- The keys recorded before claims existed, under the names claims use now: deliveries keep
-- their `github-delivery:` name, Idempotency-Keys gain `idempotency-key:`.
INSERT INTO claims (tenant, key, created_at)
SELECT tenant,
       CASE WHEN key LIKE 'github-delivery:%' THEN key ELSE 'idempotency-key:' || key END,
       created_at
FROM idempotency_keys;
INSERT INTO claimed_runs (tenant, key, position, run_id, flight)
SELECT k.tenant,
       CASE WHEN k.key LIKE 'github-delivery:%' THEN k.key ELSE 'idempotency-key:' || k.key END,
       0, k.run_id, r.flight
FROM idempotency_keys k JOIN runs r ON r.id = k.run_id;
DROP TABLE idempotency_keys;

-- A schedule tick is claimed in the transaction that creates its run, and names that run.
ALTER TABLE schedule_ticks ADD COLUMN run_id TEXT;
