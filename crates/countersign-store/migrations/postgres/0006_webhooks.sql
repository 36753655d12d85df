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
    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at BIGINT NOT NULL
        DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
    next_attempt_at BIGINT NOT NULL
        DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
    -- A worker that claimed the row owns it until `lease_until`; an expired lease (a worker
    -- that died mid-delivery) makes the row claimable again.
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    UNIQUE (notification, target)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_at);

-- Every delivery attempt, whatever its outcome.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    outbox TEXT NOT NULL REFERENCES webhook_outbox (id),
    notification TEXT NOT NULL,
    target TEXT NOT NULL,
    url TEXT NOT NULL,
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    -- When the request started, Unix milliseconds from the delivering worker's clock.
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    -- The HTTP status, absent when no response came back (`error` says why).
    status BIGINT,
    error TEXT,
    -- delivered, retry (scheduled again) or dead (attempts exhausted).
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead'))
);
CREATE INDEX webhook_deliveries_by_outbox ON webhook_deliveries (outbox);
