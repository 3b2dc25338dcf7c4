"""Server settings parsed from `MDSERVE_*` environment variables (see docs/CONTRACTS.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("auto", "sklearn", "tensorflow", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use; the message names it."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything the model server needs to know at start-up."""

    model_name: str
    """Name used in URLs, `/v2/models/{name}`, and in the `model` metric label."""
    model_uri: str
    """Local path, `file://` URI or `http(s)://` URL of the model artifact."""
    model_format: str = "auto"
    """One of `FORMATS`; `auto` detects it from the artifact."""
    model_version: str = "1"
    """Version label and the `/versions/{v}` path segment."""
    model_sha256: str = ""
    """Expected sha256 of the artifact (hex); required for pickles unless `trust_pickle`."""
    trust_pickle: bool = False
    """Unpickle without a sha256 pin. Unpickling runs arbitrary code: only for trusted sources."""
    quantization: str = "none"
    """Quantize at start-up: one of `QUANTIZATIONS`."""
    quantization_sample: str = ""
    """`.npy`/`.npz`/`.csv` sample for int8 calibration and the start-up agreement check."""
    quantization_min_agreement: float = 0.0
    """Refuse to serve a quantized model whose agreement with the original on the sample is lower."""
    variant: str = "default"
    """`variant` metric label (set by the operator: e.g. stable, canary, int8)."""
    revision: str = "0"
    """`revision` metric label (set by the operator)."""
    host: str = "0.0.0.0"
    """Listen address."""
    port: int = 8080
    """Listen port."""
    max_request_bytes: int = 16 * 1024 * 1024
    """Bodies larger than this are refused with 413."""
    feedback_capacity: int = 100_000
    """How many recent request ids are remembered for feedback (LRU)."""
    max_class_labels: int = 100
    """Distinct `class` label values exported before the rest are folded into `other`."""
    shutdown_drain_seconds: float = 0.0
    """After SIGTERM keep serving this long while readiness reports 503 (lets endpoints update)."""
    shutdown_timeout_seconds: float = 30.0
    """Upper bound on waiting for in-flight requests once the listener is closed."""
    inline_max_rows: int = 64
    """Batches up to this many rows of a fast model run on the event loop; larger ones in a thread."""
    predict_threads: int = 2
    """Threads that run predictions too large or too slow to run on the event loop."""
    micro_batching: bool = True
    """Merge concurrent small requests into one model call (see mdserve.batching)."""
    cache_dir: str = "/tmp/mdserve-models"
    """Where downloaded models are stored."""
    log_level: str = "info"
    """Python logging level name."""


def _get_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{key}={raw!r} is not a boolean (use true or false)")


def _get_int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{key}={value} must be at least {minimum}")
    return value


def _get_float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a number") from None
    if value < 0:
        raise SettingsError(f"{key}={value} must not be negative")
    return value


def _get_choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(key, default).strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{key}={value!r} is not one of {', '.join(choices)}")
    return value


def settings_from_env(env: Mapping[str, str] | None = None) -> ServerSettings:
    """Parse and validate the environment; raises `SettingsError` naming the bad variable."""
    env = os.environ if env is None else env
    name = env.get("MDSERVE_MODEL_NAME", "").strip()
    if not name:
        raise SettingsError("MDSERVE_MODEL_NAME is required")
    if "/" in name or ":" in name:
        raise SettingsError(f"MDSERVE_MODEL_NAME={name!r} must not contain '/' or ':'")
    uri = env.get("MDSERVE_MODEL_URI", "").strip()
    if not uri:
        raise SettingsError("MDSERVE_MODEL_URI is required")
    sha = env.get("MDSERVE_MODEL_SHA256", "").strip().lower()
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise SettingsError("MDSERVE_MODEL_SHA256 must be 64 hex characters")
    quantization = _get_choice(env, "MDSERVE_QUANTIZATION", "none", QUANTIZATIONS)
    sample = env.get("MDSERVE_QUANTIZATION_SAMPLE", "").strip()
    if quantization == "int8" and not sample:
        raise SettingsError("MDSERVE_QUANTIZATION=int8 needs MDSERVE_QUANTIZATION_SAMPLE (calibration rows)")
    if sample and not Path(sample).is_file():
        raise SettingsError(f"MDSERVE_QUANTIZATION_SAMPLE={sample!r} is not a file")
    min_agreement = _get_float(env, "MDSERVE_QUANTIZATION_MIN_AGREEMENT", 0.0)
    if min_agreement > 1:
        raise SettingsError("MDSERVE_QUANTIZATION_MIN_AGREEMENT must be between 0 and 1")
    version = env.get("MDSERVE_MODEL_VERSION", "1").strip() or "1"
    if "/" in version:
        raise SettingsError(f"MDSERVE_MODEL_VERSION={version!r} must not contain '/'")
    return ServerSettings(
        model_name=name,
        model_uri=uri,
        model_format=_get_choice(env, "MDSERVE_MODEL_FORMAT", "auto", FORMATS),
        model_version=version,
        model_sha256=sha,
        trust_pickle=_get_bool(env, "MDSERVE_TRUST_PICKLE", False),
        quantization=quantization,
        quantization_sample=sample,
        quantization_min_agreement=min_agreement,
        variant=env.get("MDSERVE_VARIANT", "default").strip() or "default",
        revision=env.get("MDSERVE_REVISION", "0").strip() or "0",
        host=env.get("MDSERVE_HOST", "0.0.0.0").strip() or "0.0.0.0",
        port=_get_int(env, "MDSERVE_HTTP_PORT", 8080, minimum=1),
        max_request_bytes=_get_int(env, "MDSERVE_MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024),
        feedback_capacity=_get_int(env, "MDSERVE_FEEDBACK_CAPACITY", 100_000, minimum=0),
        max_class_labels=_get_int(env, "MDSERVE_MAX_CLASS_LABELS", 100, minimum=1),
        shutdown_drain_seconds=_get_float(env, "MDSERVE_SHUTDOWN_DRAIN_SECONDS", 0.0),
        shutdown_timeout_seconds=_get_float(env, "MDSERVE_SHUTDOWN_TIMEOUT_SECONDS", 30.0),
        inline_max_rows=_get_int(env, "MDSERVE_INLINE_MAX_ROWS", 64, minimum=0),
        predict_threads=_get_int(env, "MDSERVE_PREDICT_THREADS", 2, minimum=1),
        micro_batching=_get_bool(env, "MDSERVE_MICRO_BATCHING", True),
        cache_dir=env.get("MDSERVE_CACHE_DIR", "/tmp/mdserve-models").strip() or "/tmp/mdserve-models",
        log_level=env.get("MDSERVE_LOG_LEVEL", "info").strip().lower() or "info",
    )
