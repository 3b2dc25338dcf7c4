"""Fetch → detect → verify → load (→ quantize): everything between a model URI and a runtime."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from mdserve.detect import Artifact, detect
from mdserve.errors import ModelLoadError
from mdserve.runtimes.base import Model
from mdserve.settings import ServerSettings
from mdserve.sources import artifact_sha256, fetch

log = logging.getLogger("mdserve.loader")


@dataclass(frozen=True)
class LoadedModel:
    """A runtime ready for warm-up, and what to report about it."""

    model: Model
    """The runtime."""
    details: dict[str, str] = field(default_factory=dict)
    """Exported as `mdserve_model_info` labels and logged."""


def load_runtime(artifact: Artifact) -> Model:
    """Instantiate the runtime for an artifact. Imports are lazy: a sklearn server never imports TF."""
    if artifact.format == "sklearn":
        from mdserve.runtimes.sklearn import load_sklearn

        return load_sklearn(artifact.path)
    if artifact.format == "tensorflow":
        from mdserve.runtimes.tensorflow import load_tensorflow

        return load_tensorflow(artifact.path)
    if artifact.format == "tflite":
        from mdserve.runtimes.tflite import load_tflite

        return load_tflite(artifact.path)
    if artifact.format == "onnx":
        from mdserve.runtimes.onnx import load_onnx

        return load_onnx(artifact.path)
    raise ModelLoadError(f"unknown model format {artifact.format!r}")


def verify(artifact: Artifact, downloaded_sha256: str | None, pin: str, trust_pickle: bool) -> str:
    """Check the sha256 pin and refuse unpinned pickles. Returns the digest that was checked."""
    digest = downloaded_sha256 or artifact_sha256(artifact.path)
    if pin and digest != pin:
        raise ModelLoadError(f"sha256 mismatch for {artifact.path.name}: expected {pin}, got {digest}")
    if artifact.format == "sklearn" and not pin and not trust_pickle:
        raise ModelLoadError(
            f"refusing to unpickle {artifact.path.name} without MDSERVE_MODEL_SHA256: unpickling runs "
            f"arbitrary code. Pin it (sha256 {digest}) or set MDSERVE_TRUST_PICKLE=true for a trusted source"
        )
    return digest


def load_model(settings: ServerSettings) -> LoadedModel:
    """The whole start-up load. Blocking (downloads, unpickling, TF graph loading): run in a thread."""
    started = time.perf_counter()
    fetched = fetch(settings.model_uri, Path(settings.cache_dir))
    artifact = detect(fetched.path, settings.model_format)
    digest = verify(artifact, fetched.downloaded_sha256, settings.model_sha256, settings.trust_pickle)
    log.info("loading %s model from %s (sha256 %s)", artifact.format, artifact.path, digest)
    model = load_runtime(artifact)
    details = {
        "format": artifact.format,
        "sha256": digest,
        "quantization": "none",
        "source_format": artifact.format,
    }
    if settings.quantization != "none":
        from mdserve.quantize.startup import quantize_at_startup

        model, report = quantize_at_startup(artifact, model, settings)
        details.update(format=model.info.format, quantization=settings.quantization)
        log.info("quantized at start-up:\n%s", report)
    log.info("model loaded in %.2f s", time.perf_counter() - started)
    return LoadedModel(model, details)
