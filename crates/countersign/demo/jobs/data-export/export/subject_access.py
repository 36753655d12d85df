"""Builds a data-subject-access export for one customer."""

EXPORT_BUCKET = "acme-prod-exports"
EXPIRY_DAYS = 30


def export_key(customer_id: str, request_id: str) -> str:
    return f"dsar/{customer_id}/{request_id}.zip"
