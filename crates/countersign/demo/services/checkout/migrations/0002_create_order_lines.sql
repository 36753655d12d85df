CREATE TABLE order_lines (
    order_id         UUID NOT NULL REFERENCES orders (id),
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
);
