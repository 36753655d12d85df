from fastapi import FastAPI

app = FastAPI(title="search")


@app.get("/search")
def search(q: str, limit: int = 20) -> dict:
    return {"query": q, "hits": [], "limit": min(limit, 100)}
