-- Content-addressed blobs (the governed files a decision read, evidence envelopes,
-- authorization statements), referenced from events by lower-case hex SHA-256. The digest
-- lives in the Merkle-logged event, so editing a blob here is detected by bundle verify.
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY CHECK (length(digest) = 64),
    content BLOB NOT NULL
);

-- Which proposal each log entry is about, so a bundle is collected without scanning the log.
-- An index, not a source of truth: bundle verify checks every event's subject itself.
CREATE TABLE log_subjects (
    idx INTEGER PRIMARY KEY,
    subject TEXT NOT NULL
);
CREATE INDEX log_subjects_by_subject ON log_subjects (subject, idx);
