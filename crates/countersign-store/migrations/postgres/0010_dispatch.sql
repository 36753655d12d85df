-- Agent provenance. A token of an agent may be bound to the human who dispatches the agent
-- (`token create --on-behalf-of human:alice`); a proposal the agent opens with it records
-- that person, who counts as one of its authors (never an approver of it) whatever the
-- commits say, through every head move. NULL: no dispatcher.
ALTER TABLE tokens ADD COLUMN on_behalf_of TEXT;
ALTER TABLE proposals ADD COLUMN dispatched_by TEXT;
