-- The flight catalog: every `PUT /v1/flights/{name}` (or `murmur set flight`) is a new
-- generation; nothing is overwritten. Deleting a flight marks its generations deleted, so a
-- generation number is never handed out twice.
CREATE TABLE flight_generations (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    generation BIGINT NOT NULL,
    markdown   TEXT NOT NULL,
    digest     TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant, name, generation)
);
