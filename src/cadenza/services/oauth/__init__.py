"""Mailboxes that log in with OAuth 2.0 instead of a password: connecting one (the
authorization-code flow with PKCE and a server-side `state`), keeping its access token
fresh, and what a refused refresh does (the mailbox disconnected, with the reason, and a
`mailbox.disconnected` webhook event; its steps wait until it is reconnected).

May call: accounts (mailboxes, the sealing keys), events_out (the webhook event), the
shared base, domain, store. The worker reaches it through worker_jobs only.
"""
