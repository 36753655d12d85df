-- What the console reads at scale (docs/benchmarks.md, "The console"), and the server's own
-- checks of its log (docs/console.md, "Audit").

-- Runs in one state, newest first (the home page's active runs, `GET /v1/runs?state=`):
-- the state's rows already in order, so a handful of running runs among 100,000 are found
-- without walking the others or sorting.
CREATE INDEX runs_by_state ON runs (state, queued_at, id);
-- The runs of a time window counted per suite, state and outcome (the home page's KPIs and
-- coverage) from the index alone, without reading the rows.
CREATE INDEX runs_by_queue_outcome ON runs (queued_at, suite, state, outcome);

-- Each check of the log made by this server (an admin's Verify on the audit page): the
-- whole stored log against the latest signed checkpoint, and that checkpoint against the
-- one the previous passing check saw (it must extend it: no rollback, no fork), as
-- `countersign log monitor` does with its state file. Kept as history; the newest is shown.
CREATE TABLE log_checks (
    id BIGSERIAL PRIMARY KEY,
    -- Unix milliseconds, the server's clock.
    checked_at BIGINT NOT NULL,
    -- The principal who asked for it.
    checked_by TEXT NOT NULL,
    -- The latest checkpoint's tree size and signed note when it ran (none: no checkpoint).
    size BIGINT,
    signed_note TEXT,
    -- The size of the previous passing check's checkpoint it was compared with.
    previous_size BIGINT,
    ok BOOLEAN NOT NULL,
    -- What was found, in a sentence: the failure's reason when not ok.
    detail TEXT NOT NULL
);
