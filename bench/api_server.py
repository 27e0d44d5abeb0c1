"""The app under test for bench/api.py: Cadenza's API plus one constant endpoint (the baseline)."""

from cadenza.services.context import Context
from cadenza.web.app import create_app

app = create_app(Context.from_settings())


@app.get("/constant")
def constant() -> dict[str, str]:
    return {"status": "ok", "answer": "constant"}
