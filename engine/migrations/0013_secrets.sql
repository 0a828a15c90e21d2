-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Secrets at rest, envelope-encrypted (murmur-vault): each tenant's data key, stored only
-- wrapped by a key-encryption key (KEK) whose id is kept beside it, so rotating the KEK
-- rewrites these rows alone; and each secret's ciphertext under its tenant's data key. No
-- column ever holds a plaintext value.
CREATE TABLE tenant_keys (
    tenant     TEXT NOT NULL PRIMARY KEY,
    kek_id     TEXT NOT NULL,
    wrapped    BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    rotated_at TEXT
);
CREATE INDEX tenant_keys_by_kek ON tenant_keys (kek_id);

CREATE TABLE secrets (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    nonce      BYTEA NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
