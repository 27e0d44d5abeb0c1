"""enrollment (docstring to write)."""
