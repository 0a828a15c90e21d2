-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Listing runs newest first, filtered by flight or by status (`GET /v1/runs`, `murmur runs ls`):
-- one index per filter, ending in the listing's order so that a page reads only its rows.
CREATE INDEX runs_by_flight ON runs (tenant, flight, created_at, id);
CREATE INDEX runs_by_status ON runs (tenant, status, created_at, id);
