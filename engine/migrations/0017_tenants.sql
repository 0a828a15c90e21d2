-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Tenants by name (`murmur tenant create`): every other table's `tenant` column names one.
-- `local`, every store's default tenant, always exists.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
INSERT INTO tenants (name, created_at) VALUES ('local', '1970-01-01T00:00:00.000Z');
