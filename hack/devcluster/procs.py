"""Starting, finding and stopping the control plane's processes, and free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(name: str, argv: list[str], pid_dir: Path, log_dir: Path, env: dict[str, str] | None = None) -> int:
    """Start a component in its own session (so it survives the calling shell) and record its pid."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, **(env or {})},
    )
    (pid_dir / f"{name}.pid").write_text(f"{proc.pid} {argv[0]}\n")
    return proc.pid


def _recorded(pid_file: Path) -> tuple[int, str] | None:
    try:
        pid_text, exe = pid_file.read_text().split(maxsplit=1)
        return int(pid_text), exe.strip()
    except (OSError, ValueError):
        return None


def alive(pid: int, exe: str) -> bool:
    """True when pid runs the recorded executable (a recycled pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return cmdline == exe or Path(cmdline).name == Path(exe).name


def running(name: str, pid_dir: Path) -> bool:
    rec = _recorded(pid_dir / f"{name}.pid")
    return rec is not None and alive(*rec)


def stop_all(pid_dir: Path, order: list[str], timeout: float = 15.0) -> list[str]:
    """Stop recorded components in order (SIGTERM, then SIGKILL); return the names that were running."""
    stopped = []
    for name in order:
        pid_file = pid_dir / f"{name}.pid"
        rec = _recorded(pid_file)
        if rec and alive(*rec):
            stopped.append(name)
            _terminate(rec[0], rec[1], timeout)
        pid_file.unlink(missing_ok=True)
    return stopped


def _terminate(pid: int, exe: str, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, exe):
        time.sleep(0.1)
        _reap(pid)
    if alive(pid, exe):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for; other sessions' are reaped by init.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
