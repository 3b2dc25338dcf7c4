"""``python -m mdserve router``: wire settings, table sources, proxy and HTTP servers together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from mdserve.router.app import build_admin_app
from mdserve.router.kubeauth import load_access
from mdserve.router.metrics import RouterMetrics
from mdserve.router.server import RouterCore
from mdserve.router.settings import Settings, SettingsError, parse_settings
from mdserve.router.source_file import FileSource
from mdserve.router.source_kube import ConfigMapSource
from mdserve.router.state import TableHolder

log = logging.getLogger("mdserve.router")


IDLE_CLIENT_SECONDS = 75.0
"""Caller connections idle this long are closed (callers' pools usually drop theirs sooner)."""


async def _sweep(core: RouterCore) -> None:
    while True:
        await asyncio.sleep(10)
        core.close_idle(IDLE_CLIENT_SECONDS)


async def serve(settings: Settings, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
    """Run the router until ``stop`` is set; ``started`` is set once it listens."""
    loop = asyncio.get_running_loop()
    metrics = RouterMetrics()
    holder = TableHolder(metrics, settings.backend_overrides)
    core = RouterCore(
        holder,
        metrics,
        loop,
        pool_size=settings.pool_size,
        keepalive_seconds=settings.keepalive_seconds,
        max_body=settings.max_body_bytes,
        shadow_max_inflight=settings.shadow_max_inflight,
        feedback_memory=settings.feedback_memory,
    )
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(_sweep(core), name="idle-sweeper")]
    admin: web.AppRunner | None = None
    server: asyncio.Server | None = None
    try:
        if settings.routes_file is not None:
            source = FileSource(holder, settings.routes_file, settings.poll_interval)
            await source.poll_once()  # serve with the file's table from the first request on
            tasks.append(asyncio.create_task(source.run(), name="routes-file"))
        if settings.configmap is not None:
            kubeconfig, env = settings.kubeconfig, dict(os.environ)
            watcher = ConfigMapSource(
                holder, lambda: load_access(kubeconfig, env), settings.configmap, settings.namespace
            )
            tasks.append(asyncio.create_task(watcher.run(), name="routes-configmap"))
        server = await loop.create_server(core.protocol, settings.host, settings.port, backlog=1024)
        log.info("router listening on %s:%d", settings.host, settings.port)
        if settings.admin_port and settings.admin_token:
            admin = web.AppRunner(build_admin_app(holder, settings.admin_token), access_log=None)
            await admin.setup()
            await web.TCPSite(admin, settings.admin_host, settings.admin_port).start()
            log.info("admin API listening on %s:%d", settings.admin_host, settings.admin_port)
        if started is not None:
            started.set()
        await stop.wait()
        log.info("stopping: finishing in-flight requests")
    finally:
        if server is not None:
            server.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if admin is not None:
            await admin.cleanup()
        await core.drain(grace_seconds=10.0)


def _install_event_loop() -> None:
    try:
        import uvloop
    except ImportError:  # optional speed-up; the router works on the stock loop
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def main(argv: Sequence[str]) -> int:
    """Entry point of ``mdserve router``; returns the process exit code."""
    try:
        settings = parse_settings(argv)
    except (SettingsError, OSError) as exc:
        print(f"mdserve router: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _install_event_loop()
    try:
        asyncio.run(_main(settings))
    except OSError as exc:  # e.g. the port is taken
        log.error("router failed: %s", exc)
        return 1
    return 0
