-- Runs of the fleet: one runner executing one suite against one commit in one environment.
--
-- A row is first a work item (`queued`), then leased by exactly one runner (`running`, with
-- a lease that its heartbeats extend; an expired lease makes the row leasable again by
-- another runner, `attempt` counting the leases), then `finished` with an outcome. Times
-- are Unix milliseconds from the server's clock (injected, so tests move it), never the
-- database's. Rows are never deleted.
CREATE TABLE runs (
    -- `r-…`.
    id TEXT PRIMARY KEY,
    -- The server's name of the repository (`serve --repo NAME=PATH`).
    repo TEXT NOT NULL,
    -- The base's `[repository] name`: what the runner's evidence must name.
    repository TEXT NOT NULL,
    suite TEXT NOT NULL,
    environment TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    -- The proposal whose head this is, or the branch (later: a schedule's); one of the two.
    proposal TEXT REFERENCES proposals (id),
    branch TEXT,
    -- The suite's definition (`[suites.NAME]` at the base) as JSON: what the runner runs.
    definition TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished')),
    outcome TEXT CHECK (outcome IN ('passed', 'failed', 'errored', 'timed_out', 'cancelled')),
    -- The runner principal holding (or that last held) the lease.
    runner TEXT,
    attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_until INTEGER,
    heartbeat_at INTEGER,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    tests_passed INTEGER CHECK (tests_passed >= 0),
    tests_failed INTEGER CHECK (tests_failed >= 0),
    tests_skipped INTEGER CHECK (tests_skipped >= 0),
    duration_ms INTEGER CHECK (duration_ms >= 0),
    -- JSON array of the lower-case hex SHA-256 digests of the envelopes the run produced.
    envelopes TEXT NOT NULL DEFAULT '[]',
    CHECK ((proposal IS NULL) <> (branch IS NULL)),
    CHECK ((state = 'finished') = (outcome IS NOT NULL))
);
CREATE INDEX runs_leasable ON runs (state, environment, queued_at);
CREATE INDEX runs_by_proposal ON runs (proposal, state);
CREATE INDEX runs_by_queued ON runs (queued_at, id);

-- The runners (`[[runners]]` names at the base) that may lease a run: those that may attest
-- its suite. A runner not listed never sees the row.
CREATE TABLE run_runners (
    run TEXT NOT NULL REFERENCES runs (id),
    runner TEXT NOT NULL,
    PRIMARY KEY (run, runner)
);
CREATE INDEX run_runners_by_runner ON run_runners (runner, run);
