CREATE TABLE postings (
    id              UUID PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    posted_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE entries (
    posting_id   UUID NOT NULL REFERENCES postings (id),
    account      TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency     CHAR(3) NOT NULL
);
