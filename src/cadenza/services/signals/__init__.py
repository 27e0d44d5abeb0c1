"""signals (docstring to write)."""
