"""delivery (docstring to write)."""
