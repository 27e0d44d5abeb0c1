"""What a worker counts and times while it runs, and the snapshot its heartbeat carries.

Each worker keeps its own registry (prometheus-client), shared with the inbox poller
and the webhook dispatcher of its process. Nothing scrapes a worker: its tick writes a
snapshot of the registry into its heartbeat row (services/monitoring/heartbeat.py), and
/metrics, on any web process, reports every recent worker's snapshot with a `worker`
label (web/observability.py). So the figures reach Prometheus across hosts, and a
worker restarting only resets its own counters, which Prometheus's rate() expects.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds: a tick is milliseconds when idle, seconds when it waits for send slots.
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Seconds after its slot that an email was handed over (spacing waits are not late).
LATENESS_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class EngineMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.handed_over = Counter(
            "cadenza_worker_emails_handed_over",
            "Emails this worker handed to a mailbox's server.",
            ["mailbox"],
            registry=registry,
        )
        self.results = Counter(
            "cadenza_worker_email_results",
            "What came of each email this worker handed over (sent, transient, permanent, "
            "auth_failed, unknown).",
            ["mailbox", "outcome"],
            registry=registry,
        )
        self.lateness = Histogram(
            "cadenza_worker_send_lateness_seconds",
            "How long after its send slot each email was handed over.",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.ticks = Histogram(
            "cadenza_worker_tick_seconds",
            "Duration of the worker's ticks (clocked jobs, claims, hand-overs).",
            buckets=TICK_BUCKETS,
            registry=registry,
        )
        self.claims = Histogram(
            "cadenza_worker_claim_seconds",
            "Duration of claiming due emails, all mailboxes, in one tick.",
            buckets=TICK_BUCKETS,
            registry=registry,
        )
        self.inbox_polls = Counter(
            "cadenza_worker_inbox_polls",
            "Inbox (IMAP) polls of a mailbox, by result (ok, error).",
            ["mailbox", "result"],
            registry=registry,
        )
        self.inbox_messages = Counter(
            "cadenza_worker_inbox_messages",
            "Messages read from a mailbox's inbox, by what they were (reply, bounce...).",
            ["mailbox", "verdict"],
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "cadenza_worker_webhook_attempts",
            "Webhook POSTs, by what the delivery came to (delivered, retry, failed, deleted).",
            ["outcome"],
            registry=registry,
        )

    def snapshot(self) -> dict[str, Any]:
        """The registry as plain JSON: each family's type, help and samples."""
        families = []
        for family in self.registry.collect():
            samples = [
                [s.name, dict(s.labels), s.value]
                for s in family.samples
                if not s.name.endswith("_created")  # creation times: noise once merged
            ]
            families.append(
                {
                    "name": family.name,
                    "type": family.type,
                    "help": family.documentation,
                    "samples": samples,
                }
            )
        return {"families": families}
