-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Workspaces of a tenant (`murmur workspace add`): the repositories agents work in and the
-- defaults their runs take. `repositories` and `defaults` are JSON documents (a list of
-- {url, base, conflict_resolution, credential}; {pool, environment, check, secrets}): they are
-- read and written whole, never queried by field. A clone URL never carries a credential:
-- `credential` names a secret of the tenant.
CREATE TABLE workspaces (
    tenant       TEXT NOT NULL,
    name         TEXT NOT NULL,
    repositories TEXT NOT NULL,
    defaults     TEXT NOT NULL,
    min_idle     INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- The workspace a run works in; a run without a row works in the repository its server or
-- command runs in (the implicit workspace).
CREATE TABLE run_workspaces (
    tenant    TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    workspace TEXT NOT NULL,
    PRIMARY KEY (tenant, run_id)
);
CREATE INDEX run_workspaces_by_workspace ON run_workspaces (tenant, workspace);
