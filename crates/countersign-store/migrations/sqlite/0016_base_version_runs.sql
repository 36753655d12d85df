-- Base-version runs (issue 21): for a planned suite whose defining files the head edits
-- (a self-validated suite), the server queues a second work item that runs the BASE's
-- version of the suite against the head's code. The runner checks the head out, restores
-- `suite_files` from `suite_source` (a file absent there is removed), runs the suite and
-- attests with the base named as its suite source; passing, the suite is in
-- `base_suite_passed`. Both NULL/empty for every other run.

-- The commit whose suite files the run executes (the proposal's base); NULL: the head's own.
ALTER TABLE runs ADD COLUMN suite_source TEXT;
-- JSON array of the repository paths restored from `suite_source` (the suite's defining
-- files the change added, edited, deleted or renamed).
ALTER TABLE runs ADD COLUMN suite_files TEXT NOT NULL DEFAULT '[]';
