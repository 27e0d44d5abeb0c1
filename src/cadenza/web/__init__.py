"""The HTTP face of Cadenza: the JSON API under /api/v1 (and, next, the web UI)."""
