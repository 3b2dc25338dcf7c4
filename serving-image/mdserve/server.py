"""Process lifecycle: listen at once (liveness), load and warm up the model in a thread
(readiness), drain on SIGTERM, exit non-zero when the model cannot be served."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from types import FrameType

import uvicorn

from mdserve.app import MdserveApp
from mdserve.dataplane import DataPlane
from mdserve.feedback import FeedbackStore
from mdserve.loader import load_model
from mdserve.metrics import ServerMetrics
from mdserve.settings import ServerSettings

log = logging.getLogger("mdserve.server")


class DrainingServer(uvicorn.Server):
    """uvicorn with a drain phase: on the first SIGTERM readiness turns 503 and every response
    says `connection: close`, requests keep being served for `drain_seconds`, then the listener
    closes and in-flight requests finish. Exits 0 instead of re-raising the signal."""

    def __init__(self, config: uvicorn.Config, dataplane: DataPlane, drain_seconds: float) -> None:
        super().__init__(config)
        self.dataplane = dataplane
        self.drain_seconds = drain_seconds
        self.exit_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.exit_at is not None or self.should_exit:
            # A second signal skips the drain, a second Ctrl-C also skips waiting for in-flight requests.
            self.should_exit = True
            self.force_exit = sig == signal.SIGINT and self.exit_at is None
            return
        log.info(
            "received %s: draining for %.1f s, then closing", signal.Signals(sig).name, self.drain_seconds
        )
        self.dataplane.draining = True
        self.exit_at = time.monotonic() + self.drain_seconds

    async def on_tick(self, counter: int) -> bool:
        if self.exit_at is not None and time.monotonic() >= self.exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def build_app(settings: ServerSettings) -> MdserveApp:
    metrics = ServerMetrics(
        settings.model_name,
        settings.model_version,
        settings.variant,
        settings.revision,
        settings.max_class_labels,
    )
    dataplane = DataPlane(
        settings.model_name,
        settings.model_version,
        metrics,
        FeedbackStore(settings.feedback_capacity),
        inline_max_rows=settings.inline_max_rows,
        predict_threads=settings.predict_threads,
        micro_batching=settings.micro_batching,
    )
    return MdserveApp(dataplane, settings.max_request_bytes)


async def _load_into(app: MdserveApp, settings: ServerSettings) -> None:
    started = time.perf_counter()
    loaded = await asyncio.to_thread(load_model, settings)
    await asyncio.to_thread(app.dataplane.install, loaded.model)
    # The model's objects live for the whole process: keep the cyclic GC from rescanning them
    # (full collections over a big TF graph are a source of latency spikes).
    gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - started
    app.metrics.model_loaded(seconds, loaded.details)
    log.info(
        "READY: model %r version %s (%s) on %s:%d after %.2f s",
        settings.model_name,
        settings.model_version,
        loaded.details["format"],
        settings.host,
        settings.port,
        seconds,
    )


async def serve(settings: ServerSettings) -> int:
    """Run until SIGTERM/SIGINT (exit code 0) or a model that cannot be served (exit code 1)."""
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds) or None,
        timeout_keep_alive=30,
    )
    server = DrainingServer(config, app.dataplane, settings.shutdown_drain_seconds)
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    loading = asyncio.create_task(_load_into(app, settings), name="model-load")
    exit_code = 0
    done, _ = await asyncio.wait({serving, loading}, return_when=asyncio.FIRST_COMPLETED)
    if loading in done and loading.exception() is not None:
        error = loading.exception()
        log.error("NOT READY: model %r cannot be served: %s", settings.model_name, error, exc_info=error)
        exit_code = 1
        server.should_exit = True
    elif serving in done and not loading.done():
        log.warning("server stopped before the model finished loading")
        loading.cancel()
    await serving
    if not server.started and exit_code == 0:
        exit_code = 1  # could not bind the port
    app.dataplane.close()
    return exit_code


def run(settings: ServerSettings) -> int:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings))
