-- An Idempotency-Key is bound to what it was first sent with: the route and a digest of the
-- request body. The same key on another route or with another body is refused, never
-- answered with the first request's response. Keys stored before this column have an empty
-- scope and match nothing.
ALTER TABLE idempotency ADD COLUMN scope TEXT NOT NULL DEFAULT '';
