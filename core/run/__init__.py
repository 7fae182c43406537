"""Running audits: the runner, where generations are computed, progress, ETA and cost."""
