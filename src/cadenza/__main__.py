"""`python -m cadenza` is the `cadenza` command."""

from cadenza.cli import app

app()
