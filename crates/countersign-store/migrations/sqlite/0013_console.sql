-- The console (docs/console.md): people's sessions, kept in the database so every replica
-- on it knows them and a sign-out ends a session everywhere at once.

-- A signed-in person's session. The cookie holds a random secret; only its SHA-256 is here.
CREATE TABLE console_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('proposer', 'runner', 'approver', 'auditor', 'admin')),
    -- The per-session CSRF token every form of the session carries.
    csrf TEXT NOT NULL,
    -- Signed in with an API token: that token, read again on every request (revoked or
    -- expired, the session ends with it).
    token_id TEXT,
    -- Signed in with OIDC: who vouched.
    issuer TEXT,
    subject TEXT,
    email TEXT,
    -- For an agent's token bound to a person: that person.
    dispatched_by TEXT,
    -- Unix seconds, the server's clock.
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- Short-lived single-use grants: a one-click sign-in link (kind 'link', for a principal
-- and role) or an OIDC sign-in under way (kind 'oidc', with its PKCE verifier and nonce).
-- Taken by deleting the row, so each is used once whichever replica sees it.
CREATE TABLE console_grants (
    secret_sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('link', 'oidc')),
    principal TEXT,
    role TEXT CHECK (role IN ('proposer', 'runner', 'approver', 'auditor', 'admin')),
    verifier TEXT,
    nonce TEXT,
    -- Where to go once signed in (a path on this server).
    next TEXT,
    expires_at INTEGER NOT NULL
);

-- The console lists proposals newest first, by state.
CREATE INDEX proposals_by_state ON proposals (state, id);
