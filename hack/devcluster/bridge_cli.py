"""`python -m devcluster.bridge`: the pod bridge as a command, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from devcluster.bridge import MANAGED, BridgeOptions, PodBridge, log
from devcluster.bridge import __doc__ as bridge_doc
from devcluster.paths import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.bridge", description=bridge_doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", action="append", help="namespace to watch (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".cluster" / "bridge",
                        help="where services.json and file_sd.json are written (default .cluster/bridge)")
    parser.add_argument("--log-dir", type=Path, help="process logs (default <state-dir>/logs)")
    parser.add_argument("--kubeconfig", type=Path, help="default $KUBECONFIG, else the local cluster's")
    parser.add_argument("--selector", default=MANAGED, help=f"Deployment label selector (default {MANAGED})")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra env for every process (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = BridgeOptions(args.state_dir, None if args.all_namespaces else args.namespace, args.log_dir,
                            args.kubeconfig, args.selector,
                            extra_env=dict(e.split("=", 1) for e in args.env if "=" in e))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    bridge = PodBridge(options)
    try:
        bridge.start()
    except Exception as exc:  # unreachable cluster, bad kubeconfig
        log.error("cannot start: %s", exc)
        return 1
    log.info("bridging; service map %s, Prometheus file_sd %s, logs %s", options.map_file, options.file_sd,
             bridge.log_dir)
    try:
        stop.wait()
    finally:
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
