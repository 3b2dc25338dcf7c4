"""What only the operator can tell about a model before rolling it out.

`static_problems` is pure (scheme and format/quantization combinations); `UriChecker` HEAD-checks http(s) URIs
from a worker thread, with a timeout and a short cache so a reconcile storm does not hammer the model store.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from modeldeploy.render.variants import Variant
from modeldeploy.status import Problem

RESERVED_SCHEMES = ("s3://", "gs://")
QUANTIZABLE = {"auto", "tensorflow", "sklearn"}
"""What mdserve quantizes at start-up: TensorFlow/Keras to TFLite, sklearn through ONNX. A .tflite or .onnx
artifact is already converted: mdserve refuses to quantize it again (the pod would crash-loop)."""
NO_FLOAT16 = {"sklearn"}
"""mdserve quantizes sklearn models through ONNX: dynamic and int8 (onnxruntime dynamic int8), no float16."""
_EXTENSIONS = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
    ".tflite": "tflite",
    ".keras": "tensorflow",
    ".h5": "tensorflow",
}


def implied_format(uri: str) -> str | None:
    """The format a file extension implies, or None (directories, SavedModels and unknown names)."""
    path = uri.split("?", 1)[0].rstrip("/").lower()
    for ext, fmt in _EXTENSIONS.items():
        if path.endswith(ext):
            return fmt
    return None


def static_problems(variants: list[Variant]) -> Problem | None:
    for v in variants:
        where = "spec.model" if v.name == "primary" else f"spec.variants[{v.name}]"
        m = v.model
        if m.uri.startswith(RESERVED_SCHEMES):
            return Problem(
                "UnsupportedModelURI",
                f"{where}.uri: {m.uri.split('://')[0]}:// is not supported yet; use http(s)://, pvc:// "
                "or a path in the image",
            )
        implied = implied_format(m.uri)
        fmt = m.format if m.format != "auto" else (implied or "auto")
        if m.format != "auto" and implied is not None and implied != m.format:
            return Problem(
                "InvalidSpec", f"{where}.format: {m.format} does not match the {implied} artifact {m.uri}"
            )
        if m.quantization != "none" and fmt not in QUANTIZABLE:
            return Problem(
                "InvalidSpec",
                f"{where}: quantization {m.quantization} is not supported for {fmt} "
                "models (tensorflow and sklearn only: quantize the original model, or serve a tflite/onnx "
                "artifact that is already quantized with quantization: none)",
            )
        if m.quantization == "float16" and fmt in NO_FLOAT16:
            return Problem(
                "InvalidSpec", f"{where}: quantization float16 is not available for {fmt} models "
                "(use dynamic or int8)",
            )
    return None


Fetcher = Callable[[str, float], None]
"""Raises when the URI is unreachable."""


def head(uri: str, timeout: float) -> None:
    request = urllib.request.Request(uri, method="HEAD", headers={"User-Agent": "modeldeploy-operator"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        if e.code == 405:  # some stores refuse HEAD; a GET of the headers proves reachability just as well
            with urllib.request.urlopen(urllib.request.Request(uri), timeout=timeout):
                return
        raise


class UriChecker:
    """Caches results (`ok_ttl` for success, `bad_ttl` for failure) per URI."""

    def __init__(
        self,
        timeout: float,
        fetch: Fetcher = head,
        ok_ttl: float = 300.0,
        bad_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.fetch = fetch
        self.ok_ttl, self.bad_ttl = ok_ttl, bad_ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def check(self, uri: str) -> str | None:
        """None when reachable (or not http(s)), else the error."""
        if not uri.startswith(("http://", "https://")):
            return None
        now = self.clock()
        with self._lock:
            cached = self._cache.get(uri)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            self.fetch(uri, self.timeout)
            error = None
        except Exception as e:  # any failure to reach the artifact is reported, never raised
            error = f"{type(e).__name__}: {e}"
        with self._lock:
            self._cache[uri] = (now + (self.bad_ttl if error else self.ok_ttl), error)
        return error

    def problem(self, variants: list[Variant]) -> Problem | None:
        for v in variants:
            error = self.check(v.model.uri)
            if error is not None:
                where = "spec.model" if v.name == "primary" else f"spec.variants[{v.name}].model"
                return Problem("ModelUnavailable", f"{where}.uri {v.model.uri} is unreachable: {error}")
        return None
