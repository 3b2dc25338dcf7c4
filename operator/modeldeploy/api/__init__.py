"""The ModelDeployment API: CRD schema (single source of truth), generated artefacts and spec parsing."""
