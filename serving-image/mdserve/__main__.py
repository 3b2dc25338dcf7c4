"""`python -m mdserve serve | quantize | router | hash`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _serve(_args: argparse.Namespace) -> int:
    from mdserve.settings import SettingsError, settings_from_env

    try:
        settings = settings_from_env()
    except SettingsError as error:
        _configure_logging("info")
        logging.getLogger("mdserve").error("NOT READY: bad configuration: %s", error)
        return 2
    _configure_logging(settings.log_level)
    from mdserve.server import run

    return run(settings)


def _hash(args: argparse.Namespace) -> int:
    from mdserve.sources import artifact_sha256

    path = Path(args.path)
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    print(artifact_sha256(path))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "router":
        # The router parses its own flags; imported lazily so the server never loads it.
        from mdserve.router.cli import main as router_main

        return router_main(arguments[1:])
    if arguments and arguments[0] == "quantize":
        from mdserve.quantize.cli import main as quantize_main

        return quantize_main(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="mdserve", description="Model server for sklearn and TensorFlow models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="serve the model configured by MDSERVE_* env vars",
        description="Serve one model. Configuration comes from MDSERVE_* environment variables "
        "(MDSERVE_MODEL_NAME, MDSERVE_MODEL_URI, ...; see docs/serving.md).",
    )
    serve_parser.set_defaults(func=_serve)
    commands.add_parser("quantize", help="convert a model to TFLite/ONNX and report the accuracy delta")
    commands.add_parser("router", help="run the traffic router (mdserve.router)")
    hash_parser = commands.add_parser("hash", help="print the sha256 pin of a model file or directory")
    hash_parser.add_argument("path")
    hash_parser.set_defaults(func=_hash)
    args = parser.parse_args(arguments)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
