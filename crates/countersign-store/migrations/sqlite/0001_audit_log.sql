-- The audit log (RFC 6962 leaves and the tlog stored hashes), its signed checkpoints, and
-- the decisions recorded with it. SQLite dialect; migrations/postgres holds the same schema.

-- The one row that says how many leaves the log has. Appenders write it in the same
-- transaction as the leaves, and SQLite's single writer (BEGIN IMMEDIATE) serializes them.
CREATE TABLE log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL CHECK (size >= 0)
);
INSERT INTO log_head (id, size) VALUES (1, 0);

-- Leaf `idx` holds the canonical JSON (RFC 8785) of one audit event, as bytes: the exact
-- bytes hashed into the tree.
CREATE TABLE log_leaves (
    idx INTEGER PRIMARY KEY CHECK (idx >= 0),
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX log_leaves_by_hash ON log_leaves (leaf_hash);

-- Complete-subtree hashes at their countersign_audit::merkle::stored_hash_index.
CREATE TABLE log_hashes (
    idx INTEGER PRIMARY KEY CHECK (idx >= 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);

-- The log is append-only. These triggers stop honest mistakes; they do not stop someone with
-- write access to the file (they can drop them), which is what checkpoints and verify are for.
CREATE TRIGGER log_leaves_append_only_update BEFORE UPDATE ON log_leaves
BEGIN SELECT RAISE(ABORT, 'log_leaves is append-only'); END;
CREATE TRIGGER log_leaves_append_only_delete BEFORE DELETE ON log_leaves
BEGIN SELECT RAISE(ABORT, 'log_leaves is append-only'); END;
CREATE TRIGGER log_hashes_append_only_update BEFORE UPDATE ON log_hashes
BEGIN SELECT RAISE(ABORT, 'log_hashes is append-only'); END;
CREATE TRIGGER log_hashes_append_only_delete BEFORE DELETE ON log_hashes
BEGIN SELECT RAISE(ABORT, 'log_hashes is append-only'); END;

-- Signed checkpoints (C2SP signed notes), one per tree size.
CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY CHECK (size >= 0),
    signed_note TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A decision points at the log entry that records it: no decision without its entry.
CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    tier TEXT NOT NULL,
    record TEXT NOT NULL,
    log_index INTEGER NOT NULL REFERENCES log_leaves (idx)
);
CREATE INDEX decisions_by_subject ON decisions (subject);

-- The log's events with their fields, for ad-hoc queries. CAST: SQLite 3.45+ would read a
-- BLOB argument to json_extract as JSONB.
CREATE VIEW events AS
SELECT
    idx,
    json_extract(CAST(leaf AS TEXT), '$.kind') AS kind,
    json_extract(CAST(leaf AS TEXT), '$.at') AS at,
    json_extract(CAST(leaf AS TEXT), '$.subject') AS subject,
    json_extract(CAST(leaf AS TEXT), '$.actor') AS actor,
    json_extract(CAST(leaf AS TEXT), '$.data') AS data
FROM log_leaves;
