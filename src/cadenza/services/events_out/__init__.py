"""What every change reports, written in the change's own transaction: automation events
(triggers, read later by the rules' runner in automation/) and webhook events with their
subscriptions and deliveries (webhooks, POSTed by engine/webhook_dispatch.py).

Every area that changes something calls this package, so it calls only accounts (the
sealed signing secrets), the shared base, domain and store: nothing here acts on what it
records.
"""
