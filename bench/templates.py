"""What the render budget costs: a budgeted render against the bare Jinja sandbox.

    .venv/bin/python bench/templates.py [--renders 2000]

Renders three typical email bodies (plain tokens, an if/else with filters, a loop over a
list property) through `templates.render`, whose every loop item, filter, operator and
output chunk is charged to the render's budget, and through an ImmutableSandboxedEnvironment
with no hooks. Prints the per-render times and their ratio (budgeted / bare), the
overhead the limits add to the worker's compose step.
"""

from __future__ import annotations

import argparse
import statistics
import time

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cadenza.domain import templates

BODIES = {
    "tokens": "<p>Hi {{ contact.firstname }},</p><p>How is {{ contact.company }}?</p>"
    "<p>{{ sender.firstname }}</p>",
    "branches": "<p>Hi {{ contact.firstname | default('there') | title }},</p>"
    "{% if contact.company %}<p>{{ contact.company | upper }} and {{ contact.industry "
    "| lower }}</p>{% else %}<p>Your team</p>{% endif %}"
    "<p>{{ contact.city | default('your city') ~ ', ' ~ contact.country | default('') }}</p>",
    "loop": "<p>Hi {{ contact.firstname }}</p><ul>{% for t in contact.tags %}"
    "<li>{{ loop.index }}. {{ t | capitalize }}</li>{% endfor %}</ul>",
}
CONTEXT = {
    "contact": {
        "firstname": "Ada",
        "company": "Analytical Engines",
        "industry": "Computing",
        "city": "London",
        "country": "UK",
        "tags": [f"tag {i}" for i in range(20)],
    },
    "sender": {"firstname": "Charles"},
}


def _per_render(func, renders: int) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(renders):
            func()
        rounds.append((time.perf_counter() - start) / renders)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2000)
    args = parser.parse_args()
    bare_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
    print(f"{'body':<10} {'budgeted µs':>12} {'bare µs':>9} {'ratio':>6}")
    for name, body in BODIES.items():
        bare = bare_env.from_string(body)
        budgeted = _per_render(
            lambda body=body: templates.render(body, CONTEXT, html=True), args.renders
        )
        plain = _per_render(lambda bare=bare: bare.render(CONTEXT), args.renders)
        print(f"{name:<10} {budgeted * 1e6:>12.1f} {plain * 1e6:>9.1f} {budgeted / plain:>6.2f}")


if __name__ == "__main__":
    main()
