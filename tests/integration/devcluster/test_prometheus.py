"""The real Prometheus server scrapes a real process on loopback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from devcluster.procs import free_port
from devcluster.prometheus import PrometheusServer, ScrapeTarget

pytestmark = pytest.mark.integration

EXPORTER = """
import sys, time
from prometheus_client import Counter, start_http_server
c = Counter("fixture_ticks", "ticks")
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
while True:
    c.inc(); time.sleep(0.1)
"""


def test_prometheus_scrapes_a_loopback_exporter() -> None:
    port = free_port()
    exporter = subprocess.Popen([sys.executable, "-c", EXPORTER, str(port)])
    try:
        with PrometheusServer([ScrapeTarget("fixture", [f"127.0.0.1:{port}"], {"variant": "a"})]) as prom:
            deadline = time.monotonic() + 60
            value = 0.0
            while time.monotonic() < deadline:
                result = prom.query('fixture_ticks_total{job="fixture",variant="a"}')
                if result:
                    value = float(result[0]["value"][1])  # type: ignore[index]
                    if value > 0:
                        break
                time.sleep(0.5)
            assert value > 0
            up = prom.query('up{job="fixture"}')
            assert up and up[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        exporter.kill()
        exporter.wait()
