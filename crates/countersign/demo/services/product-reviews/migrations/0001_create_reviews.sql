CREATE TABLE reviews (
    id          UUID PRIMARY KEY,
    sku         TEXT NOT NULL,
    customer_id UUID NOT NULL,
    rating      SMALLINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body        TEXT NOT NULL
);
