"""`MDSERVE_QUANTIZATION`: convert the freshly loaded model before serving it."""

from __future__ import annotations

from pathlib import Path

from mdserve.detect import Artifact
from mdserve.errors import ModelLoadError
from mdserve.quantize.convert import ConversionError
from mdserve.quantize.pipeline import convert_and_check
from mdserve.quantize.samples import SampleError, load_sample
from mdserve.runtimes.base import Model
from mdserve.settings import ServerSettings

#: Env values map to converter modes; sklearn has no float16, its int8 is ORT dynamic int8.
_MODES = {"dynamic": "dynamic", "float16": "float16", "int8": "int8"}


def quantize_at_startup(artifact: Artifact, model: Model, settings: ServerSettings) -> tuple[Model, str]:
    """Return the quantized model and a printable report; ModelLoadError when refused."""
    mode = _MODES[settings.quantization]
    if artifact.format == "sklearn" and mode == "float16":
        raise ModelLoadError(
            "MDSERVE_QUANTIZATION=float16 is not available for sklearn models (use dynamic or int8)"
        )
    features = labels = None
    if settings.quantization_sample:
        try:
            features, labels = load_sample(Path(settings.quantization_sample))
        except SampleError as exc:
            raise ModelLoadError(str(exc)) from exc
    try:
        converted = convert_and_check(
            artifact, model, mode, features, labels, settings.quantization_min_agreement
        )
    except ConversionError as exc:
        raise ModelLoadError(str(exc)) from exc
    report = (
        converted.report.render() if converted.report else f"{mode}: no sample given, agreement not checked"
    )
    return converted.model, report
