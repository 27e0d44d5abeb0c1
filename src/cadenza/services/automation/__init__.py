"""What reacts to changes: the rules admins define (trigger, conditions, action) and the
runner that reads the automation events every change writes (events_out.triggers) and
lets each enabled rule act.

May call: enrollment (enroll, control), crm, sequences.catalog, events_out, accounts,
the shared base, domain, store. Nothing in services calls it but the worker's facade.
"""
