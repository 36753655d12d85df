"""Streams order-events into the raw.orders table."""

TOPIC = "order-events"
TABLE = "acme_prod.raw.orders"


def to_row(event: dict) -> dict:
    return {"order_id": event["order_id"], "type": event["type"]}
