"""A sequence's figures, pre-aggregated: enrollments by state, each step's runs by
status and its tasks, kept as append-only deltas (store: `sequence_counts`).

Why deltas and not one row per figure: a row per sequence and step updated by every
send would be locked by each worker's hand-over until its commit, so the workers
sending for one sequence would wait on each other (PostgreSQL). A delta is an insert,
which locks nothing another writer needs.

- `deltas`: the one function per business effect that writes them, called by every
  service that changes a counted fact, in its transaction (a rollback drops both);
- `tally`: the one recount from the rows (the rebuild, the migration's backfill, a
  contact's erasure and the tests' oracle);
- `upkeep`: folding old deltas into one row per key, and rebuilding from the rows;
- `figures`: what a page reads, the sums of one sequence's rows.
"""
