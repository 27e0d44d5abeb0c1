"""Putting contacts into sequences and keeping them moving: enroll (one, many, a whole
list as a job), pause, resume and unenroll, moving an enrollment to its next step or its
end (progress), the tasks that task steps create, and the read models of an enrollment
(its steps and projected future).

May call: sequences (task notes and manual-email drafts are rendered as emails are, by
sequences.personalization.render_step), crm, accounts.users, events_out, the shared
base, domain, store. delivery, above it, calls enrollment.progress after a send.
"""
