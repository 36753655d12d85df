-- The closed loop (issue 17, points 4-7): schedules that queue regression runs on protected
-- branches, findings derived from what those runs found, fixes linked to findings, and the
-- post-merge runs that verify a fix held. Times are Unix milliseconds from the server's
-- (injected) clock. Rows are never deleted.

-- Why the server queued a branch's run: `schedule:NAME` (a schedule fell due) or
-- `merge:p-…` (a proposal that fixes findings merged: the reproducing suites run again on
-- the protected branch at the merged commit). NULL for a proposal's runs.
ALTER TABLE runs ADD COLUMN cause TEXT;
CREATE INDEX runs_by_branch ON runs (branch, state);

-- One row per schedule and due time: inserted (`ON CONFLICT DO NOTHING`) in the transaction
-- that queues the due time's work items, so however many servers share the database and
-- tick, a due time is queued exactly once.
CREATE TABLE schedule_fires (
    -- The server's name of the repository (`serve --repo NAME=PATH`).
    repo TEXT NOT NULL,
    schedule TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    branch TEXT NOT NULL,
    -- The branch's tip when the due time was queued: what was run.
    commit_id TEXT NOT NULL,
    fired_at INTEGER NOT NULL,
    -- Work items queued (0 when no runner may attest any of its suites).
    runs INTEGER NOT NULL CHECK (runs >= 0),
    PRIMARY KEY (repo, schedule, due_at)
);

-- What failed on a protected branch: a failed test or a reachable vulnerability, by its
-- identity (kind, suite, test or vulnerability id, component). At most one finding of an
-- identity is live (not `verified`) at a time; a later observation of it is counted there.
CREATE TABLE findings (
    -- `F-<number>`.
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE CHECK (number > 0),
    repo TEXT NOT NULL,
    -- The base's `[repository] name` of the commit it was seen at.
    repository TEXT NOT NULL,
    -- kind, suite, test or vulnerability id and component, newline-separated.
    identity TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('test_failure', 'vulnerability')),
    suite TEXT NOT NULL,
    -- The failed test's id, or the vulnerability's id.
    test TEXT NOT NULL,
    -- The component (entity ref) it is placed on; `unmapped` when none.
    component TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('low', 'moderate', 'high', 'critical')),
    state TEXT NOT NULL CHECK (state IN ('open', 'verified', 'reopened')),
    branch TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    observations INTEGER NOT NULL CHECK (observations > 0),
    -- JSON: the failing evidence (run, envelope digest, test, message, reproducing command).
    evidence TEXT NOT NULL,
    -- JSON array of the component's owners (entity refs).
    owners TEXT NOT NULL,
    -- JSON: the evidence that verified (or, reopened, failed) the fix, once there is some.
    verification TEXT,
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX findings_live_identity ON findings (repo, identity) WHERE state <> 'verified';
CREATE INDEX findings_by_state ON findings (state, number);

-- Proposals that say they fix a finding (`fixes` on `POST /v1/proposals`).
CREATE TABLE finding_fixes (
    finding TEXT NOT NULL REFERENCES findings (id),
    proposal TEXT NOT NULL REFERENCES proposals (id),
    PRIMARY KEY (finding, proposal)
);
CREATE INDEX finding_fixes_by_proposal ON finding_fixes (proposal, finding);
