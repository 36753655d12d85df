-- The server's state beside the log: API tokens, proposals, approvals and idempotency keys.
-- Every change of a proposal's state is written in the transaction that appends the event
-- recording it; these tables are the current state, the log is the history.

-- API tokens. Only the SHA-256 of the secret is stored: a copy of the database grants
-- nothing. `expires_at` is Unix seconds.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (length(secret_sha256) = 64),
    principal TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('proposer', 'runner', 'approver', 'auditor', 'admin')),
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

-- A proposal and its current state; `decision` is the decision of the current head.
CREATE TABLE proposals (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    base TEXT NOT NULL,
    head TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    author TEXT NOT NULL,
    state TEXT NOT NULL,
    tier TEXT NOT NULL,
    decision TEXT NOT NULL REFERENCES decisions (id),
    created_at TEXT NOT NULL
);
CREATE INDEX proposals_by_commit ON proposals (repo, head);

-- One verdict per approver per head: the UNIQUE constraint is what makes concurrent
-- approvals by one person count once, on either backend and across server processes.
CREATE TABLE approvals (
    proposal TEXT NOT NULL REFERENCES proposals (id),
    head TEXT NOT NULL,
    approver TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment TEXT NOT NULL,
    log_index BIGINT NOT NULL REFERENCES log_leaves (idx),
    UNIQUE (proposal, head, approver)
);

-- The response to a creating request, replayed when the same principal repeats the key.
CREATE TABLE idempotency (
    key TEXT NOT NULL,
    principal TEXT NOT NULL,
    status BIGINT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (key, principal)
);
