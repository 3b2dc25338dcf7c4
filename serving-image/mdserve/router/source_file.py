"""Route table source for local runs and tests: a file polled every ``poll_interval`` seconds."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from mdserve.router.state import TableHolder

SOURCE = "file"


def _read(path: Path) -> bytes:
    return path.read_bytes()


class FileSource:
    """Offers the file's content to the holder whenever its bytes change.

    Comparing content rather than mtime catches edits within one mtime tick and also works
    through the symlink swap a mounted ConfigMap does. Writers should replace the file
    atomically (write a temp file, then rename); a half-written file is rejected as invalid
    JSON and the next poll picks up the complete one.
    """

    def __init__(self, holder: TableHolder, path: Path, interval: float) -> None:
        self.holder = holder
        self.path = path
        self.interval = interval
        self._seen: str | None = None
        self._failing: str | None = None

    async def poll_once(self) -> None:
        """Read the file once and offer it if it changed."""
        try:
            data = await asyncio.to_thread(_read, self.path)
        except OSError as exc:
            message = f"cannot read {self.path}: {exc.strerror or exc}"
            if message != self._failing:  # report a persistent failure once, not every poll
                self._failing = message
                self.holder.source_error(SOURCE, message)
            return
        self._failing = None
        digest = hashlib.sha256(data).hexdigest()
        if digest != self._seen:
            self._seen = digest
            self.holder.offer(data, SOURCE)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval)
