"""`python -m modeldeploy` / `modeldeploy-operator`: run the operator (one replica, standalone)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

import kopf

from modeldeploy import handlers, metrics
from modeldeploy.controller import Controller
from modeldeploy.kube.client import KubeClient, load_api_client
from modeldeploy.modelcheck import UriChecker
from modeldeploy.reconciler import Reconciler
from modeldeploy.settings import Settings, add_flags, from_env, with_flags


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # kopf logs every watch event at DEBUG/INFO; keep its chatter below ours
    logging.getLogger("kopf").setLevel(max(logging.INFO, root.level))
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def build(settings: Settings, kubeconfig: str | None = None) -> tuple[kopf.OperatorRegistry, Controller]:
    kube = KubeClient(load_api_client(kubeconfig, pool_size=settings.workers + 4))
    checker = UriChecker(settings.uri_check_timeout) if settings.check_model_uri else None
    reconciler = Reconciler(kube, settings, checker)
    controller = Controller(
        reconciler,
        kube,
        workers=settings.workers,
        resync_seconds=settings.resync_seconds,
        namespaces=settings.namespaces,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller)
    return registry, controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modeldeploy-operator", description=__doc__)
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, KUBECONFIG)"
    )
    add_flags(parser)
    args = parser.parse_args(argv)
    kubeconfig = args.kubeconfig
    del args.kubeconfig
    settings = with_flags(from_env(), args)
    setup_logging(settings)
    metrics.serve(settings.metrics_port)
    registry, _ = build(settings, kubeconfig)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
