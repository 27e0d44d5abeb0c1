"""The people and things a team sells to: contacts, records of any object type and their
associations, lists (static and active) and their membership, CSV imports.

May call: events_out.triggers and events_out.webhooks (a change emits its events in its
own transaction), the shared base (context, access, lookup, audit), domain, store.
"""
