"""analytics (docstring to write)."""
