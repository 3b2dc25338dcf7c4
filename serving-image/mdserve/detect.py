"""Which runtime a model artifact needs, decided from file names; ambiguity is an error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mdserve.errors import ModelLoadError

SUFFIX_FORMATS = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".keras": "tensorflow",
    ".h5": "tensorflow",
    ".tflite": "tflite",
    ".onnx": "onnx",
}


@dataclass(frozen=True)
class Artifact:
    """The model to load and how."""

    format: str
    """sklearn, tensorflow, tflite or onnx."""
    path: Path
    """The model file, or the SavedModel directory."""


def _candidates(path: Path) -> list[Artifact]:
    if path.is_file():
        fmt = SUFFIX_FORMATS.get(path.suffix.lower())
        return [Artifact(fmt, path)] if fmt else []
    found = []
    if (path / "saved_model.pb").is_file():
        found.append(Artifact("tensorflow", path))
    for child in sorted(path.iterdir()):
        fmt = SUFFIX_FORMATS.get(child.suffix.lower())
        if fmt and child.is_file():
            found.append(Artifact(fmt, child))
    return found


def detect(path: Path, requested: str = "auto") -> Artifact:
    """Find the single model artifact in `path` (a file or a directory), optionally of the
    `requested` format. Raises `ModelLoadError` saying what was found when it is not exactly one."""
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist")
    found = _candidates(path)
    if requested != "auto":
        if path.is_file() and not found:
            return Artifact(requested, path)  # an explicit format trusts an unusual file name
        found = [a for a in found if a.format == requested]
    if not found:
        wanted = "model" if requested == "auto" else f"{requested} model"
        raise ModelLoadError(
            f"no {wanted} found at {path}: expected saved_model.pb or a file ending in "
            + ", ".join(SUFFIX_FORMATS)
        )
    if len(found) > 1:
        listing = ", ".join(f"{a.path.name} ({a.format})" for a in found)
        hint = "set MDSERVE_MODEL_FORMAT" if requested == "auto" else "point MDSERVE_MODEL_URI at one file"
        raise ModelLoadError(f"ambiguous model at {path}: found {listing}; {hint}")
    return found[0]
