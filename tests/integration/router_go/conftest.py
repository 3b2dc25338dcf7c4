"""Fixtures for the Go router (`mdroute`) integration tests: the real binary, built (cached) by
hack/build-router.sh, started on loopback with real upstream servers from tests/integration/router."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.integration.router.harness import Proc, Processes, free_port, wait_http

ROOT = Path(__file__).resolve().parents[3]


def build_mdroute() -> Path:
    """Path of the Go router binary (``MDROUTE_BINARY``, else built/cached by hack/build-router.sh)."""
    given = os.environ.get("MDROUTE_BINARY")
    if given:
        return Path(given)
    out = subprocess.run(
        [str(ROOT / "hack" / "build-router.sh")], check=True, capture_output=True, text=True, timeout=600
    ).stdout
    return Path(out.strip().splitlines()[-1])


class GoProcesses(Processes):
    """``Processes`` whose ``router`` is the Go binary (same flags as ``python -m mdserve.router``)."""

    def __init__(self, tmp: Path, binary: Path) -> None:
        super().__init__(tmp)
        self.binary = binary

    def router(self, args: list[str], env: Mapping[str, str] | None = None, wait_ready: bool = True) -> Proc:
        port = free_port()
        argv = [str(self.binary), "--host", "127.0.0.1", "--port", str(port), *args]
        proc = self.spawn(f"router-go-{port}", argv, f"http://127.0.0.1:{port}", env)
        wait_http(proc.url + ("/-/ready" if wait_ready else "/-/healthz"), proc)
        return proc


@pytest.fixture(scope="session")
def mdroute_binary() -> Path:
    return build_mdroute()


@pytest.fixture
def procs(tmp_path: Path, mdroute_binary: Path) -> Iterator[GoProcesses]:
    p = GoProcesses(tmp_path, mdroute_binary)
    try:
        yield p
    finally:
        p.stop_all()
