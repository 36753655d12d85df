-- A merged proposal's fixes are verified by post-merge runs of their reproducing suites,
-- queued exactly once (issue 18): whichever of the merge's announcements (the merged route,
-- GitHub's closed pull request, the push that landed it) finds the merged commit on a
-- protected branch takes the row (`queued_at` from NULL to its clock) in the transaction
-- that queues the runs. A merge announced before its commit reached a protected branch
-- waits here (`queued_at` NULL) for the push that lands it.
CREATE TABLE merge_verifications (
    proposal TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    -- The commit the runs verify: the merged commit.
    commit_id TEXT NOT NULL,
    -- Unix milliseconds; NULL while waiting for the commit to reach a protected branch.
    queued_at BIGINT
);
CREATE INDEX merge_verifications_waiting ON merge_verifications (repo) WHERE queued_at IS NULL;
