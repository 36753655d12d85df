-- The audit log (RFC 6962 leaves and the tlog stored hashes), its signed checkpoints, and
-- the decisions recorded with it. PostgreSQL dialect; migrations/sqlite holds the same schema.

-- The one row that says how many leaves the log has. Appenders lock it (SELECT ... FOR
-- UPDATE) before computing the next index, so concurrent writers queue instead of forking.
CREATE TABLE log_head (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL CHECK (size >= 0)
);
INSERT INTO log_head (id, size) VALUES (1, 0);

-- Leaf `idx` holds the canonical JSON (RFC 8785) of one audit event, as bytes: the exact
-- bytes hashed into the tree.
CREATE TABLE log_leaves (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
    leaf BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX log_leaves_by_hash ON log_leaves (leaf_hash);

-- Complete-subtree hashes at their countersign_audit::merkle::stored_hash_index.
CREATE TABLE log_hashes (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);

-- The log is append-only. These triggers stop honest mistakes; they do not stop someone with
-- owner rights (they can drop them), which is what checkpoints and verify are for.
CREATE FUNCTION countersign_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER log_leaves_append_only BEFORE UPDATE OR DELETE ON log_leaves
FOR EACH ROW EXECUTE FUNCTION countersign_append_only();
CREATE TRIGGER log_hashes_append_only BEFORE UPDATE OR DELETE ON log_hashes
FOR EACH ROW EXECUTE FUNCTION countersign_append_only();

-- Signed checkpoints (C2SP signed notes), one per tree size. `created_at` is text in the
-- same format as SQLite's so both backends read it alike.
CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY CHECK (size >= 0),
    signed_note TEXT NOT NULL,
    created_at TEXT NOT NULL
        DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
);

-- A decision points at the log entry that records it: no decision without its entry.
-- `record` is JSON text, not jsonb, so it reads back byte for byte on both backends.
CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    tier TEXT NOT NULL,
    record TEXT NOT NULL,
    log_index BIGINT NOT NULL REFERENCES log_leaves (idx)
);
CREATE INDEX decisions_by_subject ON decisions (subject);

-- The log's events with their fields, for ad-hoc queries.
CREATE VIEW events AS
SELECT
    idx,
    convert_from(leaf, 'UTF8')::jsonb ->> 'kind' AS kind,
    convert_from(leaf, 'UTF8')::jsonb ->> 'at' AS at,
    convert_from(leaf, 'UTF8')::jsonb ->> 'subject' AS subject,
    convert_from(leaf, 'UTF8')::jsonb ->> 'actor' AS actor,
    convert_from(leaf, 'UTF8')::jsonb -> 'data' AS data
FROM log_leaves;
