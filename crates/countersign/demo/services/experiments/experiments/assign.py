import hashlib


def variant(experiment: str, visitor_id: str, variants: list[str]) -> str:
    """Deterministic assignment: the same visitor always sees the same variant."""
    digest = hashlib.sha256(f"{experiment}:{visitor_id}".encode()).digest()
    return variants[digest[0] % len(variants)]
