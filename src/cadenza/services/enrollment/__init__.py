"""Putting contacts into sequences and keeping them moving: enroll (one, many, a whole
list as a job), pause, resume and unenroll, moving an enrollment to its next step or its
end (progress), the tasks that task steps create, and the read models of an enrollment
(its steps and projected future).

May call: sequences, crm, accounts.users, delivery.compose (task notes and manual-email
drafts are rendered the way emails are), automation.triggers and automation.webhooks, the shared
base, domain, store. delivery calls back into enrollment.progress only.
"""
