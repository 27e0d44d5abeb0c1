"""One router per resource; each only calls services."""
