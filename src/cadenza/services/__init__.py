"""Use cases, one transaction each. The web, CLI and engine call these; nothing else writes."""
