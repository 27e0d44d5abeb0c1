"""What comes back about a contact and what it does to their enrollments: replies,
auto-replies, bounces, complaints, unsubscribes and meetings (effects), from the inbox
(inbound, with the inbox cursors), the events API and providers' webhooks (events), and
the links in our emails (tracking).

May call: enrollment.control (to end or hold enrollments), crm.contacts,
accounts.link_secret (signed links), accounts.keys (booking webhook secrets), the shared
base, domain, store.
"""
