"""Pure renderers: ModelDeployment spec -> child manifests (no I/O)."""
