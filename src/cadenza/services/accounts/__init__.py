"""accounts (docstring to write)."""
