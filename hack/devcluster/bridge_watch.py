"""A minimal informer: list, then watch from the list's resourceVersion, re-list on 410 or any error.

Runs the synchronous kubernetes client in its own thread and keeps objects as plain JSON dicts. Events
arrive within milliseconds of the change; `on_change` only wakes the caller, who reads `snapshot()`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from devcluster.bridge_spec import Obj

log = logging.getLogger("devcluster.bridge")

WATCH_SECONDS = 10
"""Server-side watch timeout: bounds how long `stop()` can wait for a quiet stream to end."""


class Informer:
    """Keeps `snapshot()` in sync with `list_call(**kwargs)` (a kubernetes client `list_*` method)."""

    def __init__(self, what: str, list_call: Callable[..., Any], kwargs: dict[str, Any],
                 on_change: Callable[[], None]) -> None:
        self.what = what
        self._list = list_call
        self._kwargs = kwargs
        self._on_change = on_change
        self._items: dict[tuple[str, str], Obj] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        """Set after the first successful list."""
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._response
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()  # unblocks the reading thread at once
        self._thread.join(WATCH_SECONDS + 5)

    def snapshot(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version: str | None = self._relist()
                failures = 0
                while not self._stop.is_set() and version is not None:
                    version = self._watch(version)
            except Exception as exc:
                if self._stop.is_set():
                    return
                failures += 1
                # The first failure is often a restart of the API server; keep quiet unless it persists.
                level = logging.WARNING if failures > 1 else logging.INFO
                log.log(level, "watch of %s failed (%s: %s); re-listing", self.what, type(exc).__name__, exc)
                self._stop.wait(min(5.0, 0.5 * failures))

    def _relist(self) -> str:
        resp = self._list(**self._kwargs, _preload_content=False, _request_timeout=30)
        body = json.loads(resp.data)
        with self._lock:
            self._items = {_key(o): o for o in body.get("items") or []}
        self.synced.set()
        self._on_change()
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str | None:
        """Follow events until the server ends the stream; the version to resume from, or None to re-list."""
        resp = self._list(**self._kwargs, watch=True, resource_version=version, allow_watch_bookmarks=True,
                          timeout_seconds=WATCH_SECONDS, _preload_content=False,
                          _request_timeout=(10, WATCH_SECONDS + 20))
        self._response = resp
        try:
            for line in _lines(resp):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    log.info("watch of %s: %s; re-listing", self.what, obj.get("message"))
                    return None  # 410 Gone (compacted) and friends: start again from a fresh list
                version = str(obj.get("metadata", {}).get("resourceVersion", version))
                if kind == "BOOKMARK":
                    continue
                with self._lock:
                    if kind == "DELETED":
                        self._items.pop(_key(obj), None)
                    else:
                        self._items[_key(obj)] = obj
                self._on_change()
        finally:
            self._response = None
            with contextlib.suppress(Exception):
                resp.release_conn()
        return version


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _lines(resp: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
