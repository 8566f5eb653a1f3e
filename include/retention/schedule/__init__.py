"""A category's run: open a step once, plan, gate, archive, purge, prove - the order of a nightly run."""
