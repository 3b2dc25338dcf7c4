"""The operator's only Prometheus client: instant queries over the HTTP API (`GET /api/v1/query`).

Synchronous on purpose, on the standard library: the reconciler runs in a worker thread where blocking I/O is
the norm, and the analysis of one ModelDeployment is a handful of small queries per interval, so an event loop
would buy nothing. Never call `query` from `async def`; wrap it in `asyncio.to_thread` there.

Every way a query can go wrong comes back as a `ProviderError` value, never an exception: the analysis counts
provider errors toward `consecutiveErrorLimit`, which must not be confused with a failed measurement.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ProviderErrorKind(StrEnum):
    """Why a query produced no usable answer."""

    UNREACHABLE = "Unreachable"
    TIMEOUT = "Timeout"
    HTTP = "HTTPError"
    BAD_RESPONSE = "BadResponse"
    BAD_QUERY = "BadQuery"


@dataclass(frozen=True)
class ProviderError:
    """A query that could not be answered (the analysis cannot tell pass from fail)."""

    kind: ProviderErrorKind
    """Classification, for messages and tests."""
    message: str
    """Human-readable detail (no secrets: the token is never included)."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (or the single value of a scalar result)."""

    labels: Mapping[str, str]
    """Series labels; empty for a scalar or a label-less aggregate."""
    value: float
    """The sample value; may be NaN or +-Inf as Prometheus reports them."""


@dataclass(frozen=True)
class QueryResult:
    """The answer to one instant query: samples, or an error."""

    query: str
    """The PromQL text that was sent."""
    samples: tuple[Sample, ...] = ()
    """The returned series (empty vector means no data, which is not an error)."""
    error: ProviderError | None = None
    """Set when the query failed; `samples` is then empty."""
    warnings: tuple[str, ...] = field(default=())
    """Warnings Prometheus attached to a successful answer."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _number(raw: Any) -> float:
    """Prometheus encodes sample values as strings ("1.5", "NaN", "+Inf")."""
    if not isinstance(raw, str | int | float):
        raise ValueError(f"sample value {raw!r} is not a number")
    return float(raw)


def parse_response(query: str, status: int, body: bytes) -> QueryResult:
    """Turn an HTTP answer of /api/v1/query into a QueryResult. Pure."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        kind = ProviderErrorKind.HTTP if status >= 300 else ProviderErrorKind.BAD_RESPONSE
        snippet = body[:200].decode("utf-8", "replace")
        return QueryResult(query, error=ProviderError(kind, f"HTTP {status}, not a JSON object: {snippet!r}"))
    if doc.get("status") != "success":
        what = f"{doc.get('errorType', 'error')}: {doc.get('error', 'no detail')}"
        # 400 bad_data / 422 execution: the query itself is wrong (or too expensive); 5xx: the server.
        kind = ProviderErrorKind.BAD_QUERY if status in (400, 422) else ProviderErrorKind.HTTP
        return QueryResult(query, error=ProviderError(kind, f"HTTP {status}, {what}"))
    warnings = tuple(str(w) for w in doc.get("warnings", []) or [])
    try:
        data = doc["data"]
        rtype, result = data["resultType"], data["result"]
        if rtype == "scalar":
            return QueryResult(query, (Sample({}, _number(result[1])),), warnings=warnings)
        if rtype == "vector":
            samples = tuple(
                Sample({str(k): str(v) for k, v in item.get("metric", {}).items()}, _number(item["value"][1]))
                for item in result
            )
            return QueryResult(query, samples, warnings=warnings)
        message = f"result type {rtype!r} is not an instant vector or scalar (a bare range selector?)"
        return QueryResult(query, error=ProviderError(ProviderErrorKind.BAD_QUERY, message))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        error = ProviderError(ProviderErrorKind.BAD_RESPONSE, f"malformed answer: {e!r}")
        return QueryResult(query, error=error)


class PrometheusClient:
    """Instant queries against one Prometheus (or a compatible API such as Thanos Query or Mimir)."""

    def __init__(self, url: str, timeout: float = 5.0, authorization: str | None = None) -> None:
        """`authorization`: the whole `Authorization` header value (`Bearer …` or `Basic …`), if any."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._authorization = authorization

    def __repr__(self) -> str:  # keeps the credentials out of logs
        return f"PrometheusClient({self.url!r}, timeout={self.timeout})"

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        """Evaluate `promql` at `at` (default: the server's now). Never raises for provider problems."""
        params = {"query": promql, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        request = urllib.request.Request(
            f"{self.url}/api/v1/query",
            data=urllib.parse.urlencode(params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            method="POST",  # long queries would not fit a URL; the API accepts form posts
        )
        if self._authorization:
            request.add_header("Authorization", self._authorization)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return parse_response(promql, response.status, response.read())
        except urllib.error.HTTPError as e:
            with e:
                body = e.read()
            return parse_response(promql, e.code, body)
        except TimeoutError as e:
            return QueryResult(promql, error=ProviderError(ProviderErrorKind.TIMEOUT, f"{self.url}: {e}"))
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                kind = ProviderErrorKind.TIMEOUT
            else:
                kind = ProviderErrorKind.UNREACHABLE
            return QueryResult(promql, error=ProviderError(kind, f"{self.url}: {reason}"))
        except (OSError, ValueError, http.client.HTTPException) as e:  # reset mid-body, garbled status line
            error = ProviderError(ProviderErrorKind.UNREACHABLE, f"{self.url}: {e!r}")
            return QueryResult(promql, error=error)


def is_number(value: float | None) -> bool:
    """A finite, usable sample value."""
    return value is not None and not math.isnan(value) and not math.isinf(value)
