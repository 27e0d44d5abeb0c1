"""Pure logic with no I/O: schedule math, templates, eligibility rules, error codes."""
