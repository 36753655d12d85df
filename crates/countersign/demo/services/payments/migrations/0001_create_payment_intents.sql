CREATE TABLE payment_intents (
    id             UUID PRIMARY KEY,
    order_id       UUID NOT NULL,
    provider_token TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL,
    currency       CHAR(3) NOT NULL,
    status         TEXT NOT NULL
);
