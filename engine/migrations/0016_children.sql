-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Children: runs an agent spawned (`murmur spawn` inside an agent, the MCP tool `spawn`). The
-- primary key is the spawn's idempotency: a parent agent names a child once, so a retried tool
-- call or a resumed parent finds the child it already made. The row is inserted first, in the
-- transaction that creates the child's run, so it is never seen without that run.
CREATE TABLE agent_children (
    tenant      TEXT NOT NULL,
    parent_run  TEXT NOT NULL,
    parent_slug TEXT NOT NULL,
    slug        TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    -- 1 for a child of a top-level run's agent, 2 for a grandchild, ...
    depth       BIGINT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, parent_run, parent_slug, slug)
);
CREATE UNIQUE INDEX agent_children_run ON agent_children (run_id);
