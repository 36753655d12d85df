-- The proposal lifecycle: head moves, the authors of a change, closing and superseding.
--
-- `authors`: a JSON array of every identity that authored or committed a commit in
-- base..head, mapped to principals (`human:bob`) where the base's catalog knows the email,
-- kept as `email:<addr>` otherwise. None of them may approve. `diff_digest`: SHA-256 of the
-- diff's content (paths, modes and blob ids of both sides), how a trivial rebase is told
-- from a real change. `superseded_by` and `closed_reason` are set when a proposal is closed.
ALTER TABLE proposals ADD COLUMN authors TEXT NOT NULL DEFAULT '[]';
ALTER TABLE proposals ADD COLUMN diff_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN superseded_by TEXT REFERENCES proposals (id);
ALTER TABLE proposals ADD COLUMN closed_reason TEXT;

-- Verdicts lapse when the head moves; they are kept, marked with the log entry of the move
-- (`lapsed_by`). A verdict carried over by a trivial rebase is a new row on the new head
-- naming the head it came from (`carried_from`); its `log_index` is the move's entry. One
-- live verdict per approver and head: lapsed rows no longer hold the slot, so a head that
-- comes back is judged afresh.
ALTER TABLE approvals ADD COLUMN lapsed_by BIGINT REFERENCES log_leaves (idx);
ALTER TABLE approvals ADD COLUMN carried_from TEXT;
ALTER TABLE approvals DROP CONSTRAINT approvals_proposal_head_approver_key;
CREATE UNIQUE INDEX approvals_live ON approvals (proposal, head, approver) WHERE lapsed_by IS NULL;
CREATE INDEX approvals_by_proposal ON approvals (proposal, log_index);
