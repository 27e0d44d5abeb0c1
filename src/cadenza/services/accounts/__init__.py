"""Who uses Cadenza and what they send from: users, their API and integration tokens,
sign-in (and its brake on guessing), sending mailboxes, the hosts a mailbox may name, and
the installation's secrets (the sealing keys kept outside the database, the link-signing
key).

May call: the shared base (context, access, lookup, audit, outbound), domain, store.
Nothing here knows about sequences or enrollments: every other area may call this one.
"""
