CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    currency    CHAR(3) NOT NULL,
    stock       INTEGER NOT NULL DEFAULT 0
);
