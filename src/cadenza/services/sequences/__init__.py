"""Sequences and their ordered steps, the editor's preview of a step for one contact, and
the values templates read (personalization).

May call: the shared base (context, access, lookup, audit), domain, store.
"""
