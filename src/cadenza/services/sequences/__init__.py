"""sequences (docstring to write)."""
