"""Running an installation: backing its database up and restoring it (docs/backup.md).

May call: delivery.restore (what a restore holds for review), the shared base, store.
"""
