"""Progressive delivery: the rollout configuration, its persisted state, and the pure step engine."""
