"""The app under test for bench/api.py: Cadenza's API plus one constant endpoint (the
baseline), in a process set up as `cadenza serve` sets up its own (cli/serve.py)."""

from cadenza.runtime import settle_heap
from cadenza.services.context import Context
from cadenza.web.app import create_app

app = create_app(Context.from_settings())


@app.get("/constant")
def constant() -> dict[str, str]:
    return {"status": "ok", "answer": "constant"}


settle_heap()
