-- The log's key identity: the C2SP note verifier key (`<origin>+<key id>+<public key>`)
-- every checkpoint and authorization statement of this log is signed with. The first server
-- to start on the database records it; a server with another key refuses to start, so
-- replicas sharing the database sign under one key and bundles from any of them verify
-- against the one published key. One row at most.
CREATE TABLE log_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    verifier TEXT NOT NULL
);
