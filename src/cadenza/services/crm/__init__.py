"""The people and things a team sells to: contacts, records of any object type and their
associations, lists (static and active) and their membership, CSV imports, a contact's
export and the suppressions erasures leave (docs/contact-data.md).

May call: events_out.triggers and events_out.webhooks (a change emits its events in its
own transaction), accounts.link_secret (the key suppressions are hashed under), the
shared base (context, access, lookup, audit), domain, store.
"""
