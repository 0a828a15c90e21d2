-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- The base branch a run of a workspace was started on (`{"base": "B"}`, `--base B`), over
-- its first repository's own; NULL is the repository's.
ALTER TABLE run_workspaces ADD COLUMN base TEXT;
