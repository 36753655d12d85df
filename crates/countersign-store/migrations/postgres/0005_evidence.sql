-- Evidence accepted for a proposal: one row per envelope accepted under one head. The
-- envelope itself is a blob (its digest is in the `evidence_accepted` event); this table is
-- the index the server weighs a head's evidence from. Rows are never deleted: when the head
-- moves, the live rows lapse (`lapsed_by` names the head move), like approvals, and every
-- read takes only live rows of the current head.
CREATE TABLE evidence (
    proposal TEXT NOT NULL REFERENCES proposals (id),
    -- The proposal's head when the envelope was accepted.
    head TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES blobs (digest),
    -- The commit the envelope is about, and whether that is the head or the base.
    bound_commit TEXT NOT NULL,
    binding TEXT NOT NULL CHECK (binding IN ('head', 'base')),
    runner TEXT NOT NULL,
    suite TEXT NOT NULL,
    predicate_type TEXT NOT NULL,
    -- The `evidence_accepted` entry.
    log_index BIGINT PRIMARY KEY REFERENCES log_leaves (idx),
    -- The head move that made it lapse; NULL while it counts.
    lapsed_by BIGINT REFERENCES log_leaves (idx)
);
-- One live row per envelope and head: a repeated submission records nothing.
CREATE UNIQUE INDEX evidence_live ON evidence (proposal, head, digest) WHERE lapsed_by IS NULL;
