"""`python -m mdserve quantize MODEL --mode MODE --output FILE [--sample S --min-agreement A]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mdserve.errors import ModelLoadError

MODES = ("float32", "dynamic", "float16", "int8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdserve quantize",
        description="Convert a TF/Keras model to TFLite or a sklearn model to ONNX, and report size, "
        "latency and agreement with the original on held-out rows.",
    )
    parser.add_argument(
        "model", type=Path, help="model file or directory (SavedModel, .keras, .joblib, .pkl)"
    )
    parser.add_argument("--mode", choices=MODES, required=True, help="float32 = convert only")
    parser.add_argument("--output", type=Path, required=True, help="where to write the .tflite/.onnx file")
    parser.add_argument("--format", default="auto", choices=("auto", "sklearn", "tensorflow"))
    parser.add_argument(
        "--sample", type=Path, help=".npy/.npz (X, y)/.csv held-out rows; int8 also calibrates on them"
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.0,
        help="refuse (exit 1, nothing written) when agreement on the sample is below this fraction",
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-3, help="relative tolerance for regression agreement"
    )
    parser.add_argument("--sha256", default="", help="expected sha256 of the model (required for pickles)")
    parser.add_argument(
        "--trust-pickle", action="store_true", help="unpickle without a sha256 pin (runs its code)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not 0.0 <= args.min_agreement <= 1.0:
        print("error: --min-agreement must be between 0 and 1", file=sys.stderr)
        return 2
    from mdserve.detect import detect
    from mdserve.loader import load_runtime, verify
    from mdserve.quantize.convert import ConversionError
    from mdserve.quantize.pipeline import convert_and_check
    from mdserve.quantize.samples import SampleError, load_sample

    try:
        features = labels = None
        if args.sample is not None:
            features, labels = load_sample(args.sample)
        artifact = detect(args.model, args.format)
        verify(artifact, None, args.sha256.lower(), args.trust_pickle)
        original = load_runtime(artifact)
        converted = convert_and_check(
            artifact, original, args.mode, features, labels, args.min_agreement, args.tolerance
        )
    except (ModelLoadError, ConversionError, SampleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(converted.content)
    if converted.report is None:
        summary = {"mode": args.mode, "output": str(args.output), "converted_bytes": len(converted.content)}
        print(
            json.dumps(summary)
            if args.json
            else f"wrote {args.output} ({len(converted.content)} bytes); "
            "no --sample given, so agreement was not checked"
        )
    elif args.json:
        print(json.dumps({**converted.report.as_dict(), "output": str(args.output)}))
    else:
        print(converted.report.render())
        print(f"wrote {args.output}")
    return 0
