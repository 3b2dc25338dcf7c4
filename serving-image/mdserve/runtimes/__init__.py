"""Model runtimes: one module per format, all implementing `mdserve.runtimes.base.Model`."""
