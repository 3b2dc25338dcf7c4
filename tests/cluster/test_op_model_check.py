"""An unreachable model URI: Ready=False ModelUnavailable, a Warning Event, no children; recovery once fixed.

The reconciler runs in-process (the real one, with the real URI checker) against the cluster and a loopback
model store, because the operator process of the other tests runs with the check off (their example URIs
point at hosts this sandbox cannot reach)."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.kube.client import KubeClient, load_api_client
from modeldeploy.modelcheck import UriChecker
from modeldeploy.reconciler import Reconciler
from modeldeploy.settings import from_env
from tests.cluster.conftest import condition, get_json
from tests.conftest import ClusterHandle, Kubectl

pytestmark = pytest.mark.cluster


class _Store(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200 if self.path.startswith("/models/") else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def store() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def private_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace the operator process does not watch (it watches `t-*`)."""
    name = f"mc-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name, check=True)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def test_unreachable_model_uri(
    kubectl: Kubectl, private_namespace: str, cluster: ClusterHandle, crd: Path, store: str
) -> None:
    namespace = private_namespace
    kube = KubeClient(load_api_client(str(cluster.kubeconfig)))
    reconciler = Reconciler(kube, from_env({}), UriChecker(timeout=5, bad_ttl=0, ok_ttl=0))

    def apply(uri: str) -> None:
        body = (
            "apiVersion: serving.modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: u}\n"
            f"spec:\n  model: {{name: u, format: sklearn, uri: '{uri}'}}\n"
        )
        kubectl("apply", "-n", namespace, "-f", "-", stdin=body, check=True)

    apply(f"{store}/missing/model.joblib")
    outcome = reconciler.reconcile(namespace, "u")
    assert outcome.phase == "Degraded" and outcome.requeue_after is not None
    obj = get_json(kubectl, "md", "u", "-n", namespace)
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ModelUnavailable")
    assert "spec.model.uri" in ready["message"] and "404" in ready["message"]
    assert get_json(kubectl, "deployments", "-n", namespace)["items"] == []
    evs = get_json(kubectl, "events", "-n", namespace, "--field-selector", "involvedObject.name=u")["items"]
    assert [(e["type"], e["reason"]) for e in evs] == [("Warning", "ModelUnavailable")]
    assert reconciler.reconcile(namespace, "u").writes == 0, "no repeated status writes or events"

    apply(f"{store}/models/model.joblib")
    assert reconciler.reconcile(namespace, "u").writes > 0
    deployments = get_json(kubectl, "deployments", "-n", namespace)["items"]
    assert sorted(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments) == [
        "model-server",
        "router",
    ], "the model server and the router (default traffic provider)"
