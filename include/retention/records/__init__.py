"""The project's own registers in the target database: audit trail, anchors, locks, legal holds, suppression list."""
