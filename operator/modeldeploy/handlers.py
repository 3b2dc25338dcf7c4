"""Kopf wiring: watch ModelDeployments and their children, and turn every event into a queued key.

Only `@kopf.on.event` handlers are used. Unlike create/update/resume handlers they keep no progress or diff-
base
annotations on the object (no drift for Argo CD), and unlike timers/daemons/delete handlers they add no
finalizer
(deletion never waits for the operator). Level-based reconciles in controller.py do the rest.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modeldeploy.api.schema import GROUP, PLURAL, VERSION
from modeldeploy.controller import Controller
from modeldeploy.render.naming import LABEL_MD, MANAGER

log = logging.getLogger("modeldeploy.handlers")
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("", "v1", "configmaps"),  # the routers' tables `<md>-routes`: a hand edit is reverted at once
)
MANAGED = f"app.kubernetes.io/managed-by={MANAGER}"


def configure(settings: kopf.OperatorSettings) -> None:
    """Kopf settings for a single, standalone, event-only operator."""
    settings.peering.standalone = True  # peering freezes two live replicas; the chart runs one (Recreate)
    settings.posting.enabled = False  # our own Events say what happened; kopf's would echo every log line
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.batching.worker_limit = 1000
    for group, _, plural in CHILD_RESOURCES:
        # Server-side filtering: the operator never even receives Deployments it does not manage.
        settings.watching.label_selectors[group or "v1", plural] = MANAGED


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    @kopf.on.startup(registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)
        controller.start()

    # A registry of our own gets no default login handlers; this is kopf's own kubeconfig/in-cluster login.
    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.cleanup(registry=registry)
    def _cleanup(**_: Any) -> None:
        controller.stop()

    @kopf.on.probe(id="workers", registry=registry)
    def _probe(**_: Any) -> str:
        if not controller.healthy():
            raise kopf.PermanentError("a reconcile worker is stuck or dead")
        return "ok"

    # Async on purpose: they only put a key in a thread-safe queue (no I/O), so no executor hop is needed.
    @kopf.on.event(group=GROUP, version=VERSION, plural=PLURAL, id="modeldeployment", registry=registry)
    async def _model_deployment(name: str, namespace: str | None, **_: Any) -> None:
        if namespace:
            controller.enqueue(namespace, name)

    for group, version, plural in CHILD_RESOURCES:

        @kopf.on.event(
            group=group,
            version=version,
            plural=plural,
            id=f"child-{plural}",
            labels={"app.kubernetes.io/managed-by": MANAGER},
            registry=registry,
        )
        async def _child(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
            owner = labels.get(LABEL_MD)
            if owner and namespace:
                controller.enqueue(namespace, owner)
