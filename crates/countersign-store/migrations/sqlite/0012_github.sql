-- The GitHub integration (docs/github.md): the webhook deliveries answered, the pull requests
-- followed by proposals, and the `countersign` check each followed head reports on GitHub.

-- Every delivery (`X-GitHub-Delivery`) the server answered for good, with that answer: the
-- same delivery sent again is answered the same and changes nothing. A delivery that failed
-- for a passing reason (5xx) is not here, so a redelivery does the work.
CREATE TABLE github_deliveries (
    id TEXT PRIMARY KEY,
    -- SHA-256 of the signed body: the delivery id is a header the signature does not cover,
    -- so a captured body sent again under another id is the same delivery.
    body_digest TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    -- Unix milliseconds, the database's clock (pruning only).
    received_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);
CREATE INDEX github_deliveries_by_age ON github_deliveries (received_at);

-- The proposal that follows a pull request now: a pull request reopened after its proposal
-- was closed, or moved to another base, gets a new one.
CREATE TABLE github_pulls (
    -- `owner/name` as the server's GitHub configuration writes it.
    repository TEXT NOT NULL,
    number INTEGER NOT NULL CHECK (number > 0),
    proposal TEXT NOT NULL REFERENCES proposals (id),
    -- The GitHub App installation that sent the last delivery about it: the one to report
    -- back through. NULL with token authentication.
    installation INTEGER,
    PRIMARY KEY (repository, number)
);
CREATE INDEX github_pulls_by_proposal ON github_pulls (proposal);

-- The `countersign` check of one head of a followed proposal. A change of the proposal bumps
-- `version`; the server's GitHub worker reports while `reported` is behind it, always the
-- proposal's state at that moment, so the last report is the last state whatever the order.
CREATE TABLE github_checks (
    -- `<proposal>@<head>`.
    id TEXT PRIMARY KEY,
    proposal TEXT NOT NULL REFERENCES proposals (id),
    head TEXT NOT NULL,
    repository TEXT NOT NULL,
    installation INTEGER,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    reported INTEGER NOT NULL DEFAULT 0 CHECK (reported >= 0),
    -- The check run on GitHub, once created, and whether it shows `in_progress` or
    -- `completed` (a completed run is not reopened: a new one is created).
    check_run INTEGER,
    check_status TEXT CHECK (check_status IN ('in_progress', 'completed')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    UNIQUE (proposal, head)
);
CREATE INDEX github_checks_due ON github_checks (next_attempt_at);
