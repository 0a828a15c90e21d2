-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Worker tokens (`murmur token create --worker --pool P`) live beside API tokens, hashed the
-- same way, but only register machines of their pool: `kind` tells them apart (an API token
-- is never accepted to register a machine, nor a worker token for the API).
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
ALTER TABLE api_tokens ADD COLUMN pool TEXT;
