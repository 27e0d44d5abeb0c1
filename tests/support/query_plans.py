"""Reading PostgreSQL's plans in tests (`EXPLAIN (FORMAT JSON)`)."""

from __future__ import annotations

from typing import Any


def plan_nodes(plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every node of an `EXPLAIN (FORMAT JSON)` plan, the top one first."""
    nodes = [plan[0]["Plan"]]
    for node in nodes:
        nodes.extend(node.get("Plans", []))
    return nodes
