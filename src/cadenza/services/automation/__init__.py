"""What reacts to changes: automation events written beside each change (triggers), the
rules admins define and the runner that lets them act, and webhooks out (subscriptions,
events, deliveries; engine/webhook_dispatch.py POSTs them).

triggers and webhooks are called by every area inside its own transaction, so they call
only the shared base, domain and store; the runner and rules may call enrollment (enroll,
control), crm, sequences.catalog and accounts.keys.
"""
