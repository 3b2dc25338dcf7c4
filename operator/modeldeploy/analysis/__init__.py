"""Analysis of a canary: PromQL of the built-in checks, measurement math and verdicts (pure), one runner."""
