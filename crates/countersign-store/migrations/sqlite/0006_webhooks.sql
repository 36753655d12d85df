-- Webhook notifications: a transactional outbox and the log of delivery attempts.
--
-- An outbox row is written in the transaction that changes a proposal's state and appends
-- the event recording it, so a notification exists exactly when its state change committed.
-- One row per (notification, target): each target has its own attempts, schedule and fate.
-- Times are Unix milliseconds from the database clock, so several server processes agree
-- on what is due and when a lease has expired.

CREATE TABLE webhook_outbox (
    -- `<notification id>/<target>`.
    id TEXT PRIMARY KEY,
    -- The notification's id, the same for every target and every retry: receivers
    -- deduplicate on it (delivery is at least once).
    notification TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- The proposal the notification is about.
    subject TEXT NOT NULL,
    -- The JSON body, byte for byte as it is sent and signed.
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    next_attempt_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    -- A worker that claimed the row owns it until `lease_until`; an expired lease (a worker
    -- that died mid-delivery) makes the row claimable again.
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    UNIQUE (notification, target)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_at);

-- Every delivery attempt, whatever its outcome.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox TEXT NOT NULL REFERENCES webhook_outbox (id),
    notification TEXT NOT NULL,
    target TEXT NOT NULL,
    url TEXT NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    -- When the request started, Unix milliseconds from the delivering worker's clock.
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    -- The HTTP status, absent when no response came back (`error` says why).
    status INTEGER,
    error TEXT,
    -- delivered, retry (scheduled again) or dead (attempts exhausted).
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead'))
);
CREATE INDEX webhook_deliveries_by_outbox ON webhook_deliveries (outbox);
