"""automation (docstring to write)."""
