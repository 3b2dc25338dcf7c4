"""Process and load helpers for the router integration tests (real processes on loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A child process with its log file."""

    popen: subprocess.Popen[bytes]
    log: Path
    url: str

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_http(url: str, proc: Proc, timeout: float = 60.0, ok: Sequence[int] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``ok`` (generous timeout: the box may be loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"process exited with {proc.popen.returncode}:\n{proc.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in ok:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{proc.log_text()[-3000:]}")


class Processes:
    """Starts processes for one test and stops them all at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []

    def spawn(self, name: str, argv: list[str], url: str, env: Mapping[str, str] | None = None) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.tmp,
            )
        proc = Proc(popen, log, url)
        self.procs.append(proc)
        return proc

    def upstream(self, name: str, mode: str = "ok", delay: float = 0.5) -> Proc:
        port = free_port()
        argv = [
            sys.executable,
            str(UPSTREAM),
            "--name",
            name,
            "--port",
            str(port),
            "--mode",
            mode,
            "--delay",
            str(delay),
        ]
        proc = self.spawn(f"upstream-{name}", argv, f"http://127.0.0.1:{port}")
        wait_http(proc.url + "/-/stats", proc)
        return proc

    def router(self, args: list[str], env: Mapping[str, str] | None = None, wait_ready: bool = True) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "mdserve.router", "--host", "127.0.0.1", "--port", str(port), *args]
        proc = self.spawn(f"router-{port}", argv, f"http://127.0.0.1:{port}", env)
        wait_http(proc.url + ("/-/ready" if wait_ready else "/-/healthz"), proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def table(weights: Mapping[str, int], version: str = "v1", **extra: Any) -> dict[str, Any]:
    """A route table whose backends are fake in-cluster names (the router gets overrides)."""
    variants = [
        {"name": n, "backend": f"http://demo-{n}.test.svc:8080", "weight": w} for n, w in weights.items()
    ]
    return {"version": version, "variants": variants, **extra}


def write_table(path: Path, doc: Mapping[str, Any]) -> None:
    """Replace the routes file atomically, as a real writer must."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def overrides(upstreams: Mapping[str, Proc]) -> list[str]:
    args: list[str] = []
    for name, proc in upstreams.items():
        args += ["--backend-override", f"demo-{name}.test.svc={proc.url}"]
    return args


@dataclass(frozen=True)
class Result:
    status: int
    backend: str | None
    seconds: float
    body: dict[str, Any] | None
    headers: Mapping[str, str]


async def send(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None, body: bytes = b"{}"
) -> Result:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            raw = await resp.read()
            elapsed = time.perf_counter() - started
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            backend = parsed.get("backend") if isinstance(parsed, dict) else None
            return Result(
                resp.status, backend, elapsed, parsed, {k.lower(): v for k, v in resp.headers.items()}
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Result(-1, None, time.perf_counter() - started, {"error": repr(exc)}, {})


async def load(
    url: str,
    count: int,
    concurrency: int,
    headers_for: Callable[[int], Mapping[str, str]] | None = None,
    body_for: Callable[[int], bytes] | None = None,
    limit_seconds: float = 120.0,
) -> list[Result]:
    """Send ``count`` requests with ``concurrency`` workers; results in request order."""
    results: list[Result | None] = [None] * count
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                i = next_index
                next_index += 1
                results[i] = await send(
                    session, url, headers_for(i) if headers_for else None, body_for(i) if body_for else b"{}"
                )

        async with asyncio.timeout(limit_seconds):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in results if r is not None]


def get_json(url: str, headers: Mapping[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def metric(router_url: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """One sample from the router's /metrics (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(router_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(s.value)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
