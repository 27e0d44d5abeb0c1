"""crm (docstring to write)."""
