"""Sample files for calibration and agreement checks: `.npy` (features), `.npz` (`X` and
optional `y`), or `.csv` (numeric features; a header row is skipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdserve.runtimes.base import Array


class SampleError(ValueError):
    """The sample file cannot be used; the message says why."""


def load_sample(path: Path) -> tuple[Array, Array | None]:
    """Return the feature rows and, when present, their labels."""
    if not path.is_file():
        raise SampleError(f"sample file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            features, labels = np.load(path, allow_pickle=False), None
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as bundle:
                if "X" not in bundle:
                    raise SampleError(f"{path.name} has no array named 'X' (found {sorted(bundle.files)})")
                features = bundle["X"]
                labels = bundle.get("y", None)
        elif suffix == ".csv":
            first = path.open().readline()
            skip = 1 if any(c.isalpha() for c in first.replace("e", "").replace("E", "")) else 0
            features, labels = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2), None
        else:
            raise SampleError(f"sample {path.name}: use .npy, .npz (X, y) or .csv")
    except (OSError, ValueError) as exc:
        if isinstance(exc, SampleError):
            raise
        raise SampleError(f"cannot read sample {path.name}: {exc}") from exc
    if features.ndim < 2 or len(features) == 0:
        raise SampleError(
            f"sample {path.name} must hold at least one row of features, got shape {features.shape}"
        )
    if labels is not None and len(labels) != len(features):
        raise SampleError(f"sample {path.name}: {len(features)} rows but {len(labels)} labels")
    return features, labels
