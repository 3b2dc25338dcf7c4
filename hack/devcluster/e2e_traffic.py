"""A load generator and a feedback sender for the end-to-end tests, the demo and the rollout benchmark.

`TrafficLoop` sends single-row iris predictions (V2 protocol, a fresh `x-request-id` each) at a steady rate
to whatever URL `url_of()` returns (the ModelDeployment's Service through the pod bridge: the router once
the router provider runs). Every answer is recorded (time, status, serving variant from
`x-mdroute-variant`, latency). For each 200 the true label is queued for feedback, and a feedback thread
posts batches of `{"request_id", "truth"}` to `POST /v1/models/{name}:feedback` of `feedback_url_of(variant)`
(the Stack sends it through the ModelDeployment's Service, like a client: the router returns each row to the
variant that served it).

Bounded in count and time (`max_requests`, `max_seconds`); `stop()` joins every thread.
"""

from __future__ import annotations

import http.client
import itertools
import json
import queue
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from devcluster.e2e_models import iris

UrlOf = Callable[[], str | None]
FeedbackUrlOf = Callable[[str], str | None]


@dataclass(frozen=True)
class Answer:
    """One prediction request and how it ended."""

    at: float
    """Wall-clock time (time.time()) the answer (or the error) arrived."""
    code: int
    """HTTP status; 0 when no HTTP answer came (connection refused/reset, timeout)."""
    variant: str
    """`x-mdroute-variant` of the answer (`primary-<revision>`), empty without a router."""
    latency: float
    """Seconds from sending to the answer."""
    error: str = ""
    """The error body or the exception, for failures."""
    refused: int = 0
    """Connection attempts refused before this request could be sent (nothing was sent: retried, as a
    client retries another endpoint; the pod bridge restarts a router process when backends move)."""


@dataclass
class FeedbackStats:
    posted: int = 0
    """Feedback rows posted."""
    scored: int = 0
    """Rows the model server scored."""
    failed: int = 0
    """Rows whose post failed (no target, HTTP error, unknown request id)."""
    failed_by_variant: Counter[str] = field(default_factory=Counter)
    """Failed rows by the variant that served their prediction."""

    def fail(self, items: list[_Pending]) -> None:
        self.failed += len(items)
        self.failed_by_variant.update(p.variant for p in items)


@dataclass
class _Pending:
    request_id: str
    truth: int
    variant: str
    base: str


@dataclass
class TrafficLoop:
    """Steady single-row prediction load with feedback; use as a context manager."""

    url_of: UrlOf
    model: str = "iris"
    rate: float = 25.0
    """Requests per second over all workers."""
    workers: int = 2
    feedback_url_of: FeedbackUrlOf | None = None
    """Where the feedback of a variant's answers goes; None: no feedback. Empty variant: the request URL."""
    max_requests: int = 50_000
    max_seconds: float = 900.0
    timeout: float = 10.0
    connect_retry_seconds: float = 10.0
    """How long a refused connection is retried before the request counts as failed (code 0)."""
    answers: list[Answer] = field(default_factory=list)
    feedback: FeedbackStats = field(default_factory=FeedbackStats)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._drained = threading.Event()
        self._sent = itertools.count()
        self._queue: queue.Queue[_Pending] = queue.Queue()
        rows, labels = iris()
        self._rows = [[float(v) for v in r] for r in rows]
        self._labels = [int(v) for v in labels]
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"load-{i}", daemon=True)
                         for i in range(self.workers)]
        if self.feedback_url_of is not None:
            self._threads.append(threading.Thread(target=self._send_feedback, name="feedback", daemon=True))
        self._started = 0.0

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> TrafficLoop:
        self._started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop sending, wait for the answers in flight, then post the feedback still queued."""
        self._stop.set()
        for t in self._threads[:self.workers]:
            if t.is_alive():
                t.join(self.timeout + 5)
        self._drained.set()
        for t in self._threads[self.workers:]:
            if t.is_alive():
                t.join(self.timeout + 5)

    def __enter__(self) -> TrafficLoop:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- queries -----------------------------------------------------------------------------------------
    def snapshot(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if since <= a.at <= until]

    def counts(self, since: float = 0.0, until: float = float("inf")) -> Counter[tuple[str, int]]:
        """(variant, code) -> answers in the window."""
        return Counter((a.variant, a.code) for a in self.snapshot(since, until))

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        return [a for a in self.snapshot(since, until) if a.code != 200]

    def refused(self, since: float = 0.0) -> int:
        """Refused connection attempts (retried) of the requests answered since `since`."""
        return sum(a.refused for a in self.snapshot(since))

    def wait_answers(self, n: int, timeout: float, since: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.snapshot(since)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load: fewer than {n} answers after {timeout:.0f}s "
                                   f"({len(self.snapshot(since))}; last: {self.snapshot()[-1:]})")
            time.sleep(0.2)

    # ---- the loops ---------------------------------------------------------------------------------------
    def _over(self) -> bool:
        return (self._stop.is_set() or time.monotonic() - self._started > self.max_seconds
                or next(self._sent) >= self.max_requests)

    def _work(self, index: int) -> None:
        period = self.workers / self.rate
        conn: http.client.HTTPConnection | None = None
        base = ""
        next_at = time.monotonic() + index * period / self.workers
        while not self._over():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at = max(next_at + period, time.monotonic() - period)
            url = self.url_of()
            if not url:
                self._stop.wait(0.2)
                continue
            if conn is None or url != base:
                if conn is not None:
                    conn.close()
                base = url
                conn = _connect(base, self.timeout)
            conn, base = self._one(conn, base)

    def _one(self, conn: http.client.HTTPConnection, base: str
             ) -> tuple[http.client.HTTPConnection | None, str]:
        i = int(uuid.uuid4().int % len(self._rows))
        request_id = f"e2e-{uuid.uuid4().hex[:16]}"
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                       "data": self._rows[i]}]})
        started = time.monotonic()
        refused, stale_retried = 0, False
        while True:
            reused = conn.sock is not None
            try:
                conn.request("POST", f"/v2/models/{self.model}/infer", body=body,
                             headers={"content-type": "application/json", "x-request-id": request_id})
            except ConnectionRefusedError as exc:
                conn.close()
                refused += 1
                while True:  # until the Service has a ready endpoint again
                    if self._stop.wait(0.1):
                        return None, base  # stopping: this request was never sent
                    if time.monotonic() - started > self.connect_retry_seconds:
                        self._record(Answer(time.time(), 0, "", time.monotonic() - started, repr(exc),
                                            refused))
                        return None, base
                    new = self.url_of()
                    if new:
                        base = new
                        break
                conn = _connect(base, self.timeout)
                continue
            except OSError as exc:
                conn.close()
                if reused and not stale_retried:
                    # A kept-alive connection the server closed while idle: the request was not delivered;
                    # retried once on a fresh connection, as HTTP clients (and the router) do.
                    stale_retried = True
                    conn = _connect(base, self.timeout)
                    continue
                self._record(Answer(time.time(), 0, "", time.monotonic() - started, repr(exc), refused))
                return None, base
            try:
                resp = conn.getresponse()
                payload = resp.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                error = f"{type(exc).__name__}: {exc}"
                self._record(Answer(time.time(), 0, "", time.monotonic() - started, error, refused))
                return None, base
        variant = resp.getheader("x-mdroute-variant") or ""
        error = "" if resp.status == 200 else payload[:300].decode(errors="replace")
        self._record(Answer(time.time(), resp.status, variant, time.monotonic() - started, error, refused))
        if resp.status == 200 and self.feedback_url_of is not None:
            self._queue.put(_Pending(request_id, self._labels[i], variant, base))
        return conn, base

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _send_feedback(self) -> None:
        assert self.feedback_url_of is not None
        while True:
            last = self._drained.wait(0.5)
            batch: list[_Pending] = []
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            by_target: dict[str, list[_Pending]] = {}
            for p in batch:
                target = self.feedback_url_of(p.variant) if p.variant else p.base
                if target is None:
                    self.feedback.fail([p])
                    continue
                by_target.setdefault(target, []).append(p)
            for target, items in by_target.items():
                self._post(target, items)
            if last and self._queue.empty():
                break

    def _post(self, target: str, items: list[_Pending]) -> None:
        body = json.dumps([{"request_id": p.request_id, "truth": p.truth} for p in items])
        self.feedback.posted += len(items)
        conn = _connect(target, self.timeout)
        try:
            conn.request("POST", f"/v1/models/{self.model}:feedback", body=body,
                         headers={"content-type": "application/json"})
            resp = conn.getresponse()
            result = json.loads(resp.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError):
            self.feedback.fail(items)
            return
        finally:
            conn.close()
        # One result per row, in order (the router merges the variants' answers back into the posted order).
        results = result.get("results", [])
        failed = [p for i, p in enumerate(items) if i >= len(results) or results[i].get("status") != "scored"]
        self.feedback.scored += len(items) - len(failed)
        self.feedback.fail(failed)


def _connect(base: str, timeout: float) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
