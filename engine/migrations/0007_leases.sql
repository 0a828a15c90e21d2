-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A run's lease: which process drives it, until when, and the epoch that fences its commits.
-- Every take-over bumps the epoch; a commit carrying an older epoch is refused.
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_holder TEXT;
ALTER TABLE runs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN lease_acquired_at TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at TEXT;
CREATE INDEX runs_by_lease_owner ON runs (lease_owner);
