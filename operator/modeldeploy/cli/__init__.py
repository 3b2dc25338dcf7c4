"""The `kubectl modeldeploy` plugin."""
