"""The at-most-once delivery protocol the worker drives: claim due emails under a lease
(claims), render them once (compose), hand one over and record what came of it (handover),
take back what dead workers held (recovery), and the outbox that shows it all.

The worker calls this package and nothing else of services for sending; the order of the
steps and the states in between are documented in docs/engine.md.

May call: enrollment.progress (what comes after a send), sequences.personalization,
accounts.link_secret (signed links), events_out.triggers and events_out.webhooks, the
shared base, domain, store.
"""
