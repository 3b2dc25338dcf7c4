"""Kubernetes source: event interpretation and API access configuration (no cluster needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mdserve.router.kubeauth import KubeConfigError, from_kubeconfig_doc, in_cluster
from mdserve.router.source_kube import configmap_step, interpret_event

pytestmark = pytest.mark.unit

WHERE = "ns/demo-routes"


def cm(data: dict[str, str] | None, rv: str = "42") -> dict[str, object]:
    return {"metadata": {"name": "demo-routes", "resourceVersion": rv}, "data": data}


def test_events_map_to_steps() -> None:
    step = interpret_event({"type": "MODIFIED", "object": cm({"routes.json": "{}"}, "43")}, WHERE)
    assert (step.kind, step.document, step.resource_version) == ("offer", "{}", "43")
    step = interpret_event({"type": "ADDED", "object": cm({"other": "x"})}, WHERE)
    assert step.kind == "missing" and "no key 'routes.json'" in step.message
    step = interpret_event({"type": "DELETED", "object": cm(None, "44")}, WHERE)
    assert (step.kind, step.resource_version) == ("missing", "44") and "deleted" in step.message
    assert interpret_event({"type": "BOOKMARK", "object": cm(None, "50")}, WHERE).resource_version == "50"
    assert (
        interpret_event({"type": "ERROR", "object": {"code": 410, "message": "too old"}}, WHERE).kind
        == "expired"
    )
    assert (
        interpret_event({"type": "ERROR", "object": {"code": 500, "message": "boom"}}, WHERE).kind == "error"
    )
    assert configmap_step(None, WHERE).message == f"ConfigMap {WHERE} not found"


def test_kubeconfig_with_inline_certificates(tmp_path: Path) -> None:
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    doc = {
        "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(b"CA")},
            }
        ],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(b"CERT"), "client-key": "key.pem"}}],
    }
    (tmp_path / "key.pem").write_bytes(b"KEY")
    access = from_kubeconfig_doc(doc, tmp_path)
    assert access.server == "https://127.0.0.1:6443"
    assert (access.ca_data, access.client_cert, access.client_key) == (b"CA", b"CERT", b"KEY")
    assert access.namespace == "team" and access.auth_headers() == {}


def test_kubeconfig_token_file_is_reread(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one")
    doc = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:8001"}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
    }
    access = from_kubeconfig_doc(doc, tmp_path)
    assert access.auth_headers() == {"Authorization": "Bearer one"}
    token.write_text("two")
    assert access.auth_headers() == {"Authorization": "Bearer two"}
    assert access.ssl_context() is False


@pytest.mark.parametrize(
    ("user", "message"),
    [({"exec": {"command": "aws"}}, "exec or auth-provider"), ({"token": "t"}, "no cluster named 'missing'")],
)
def test_kubeconfig_refusals(user: dict[str, object], message: str) -> None:
    cluster = "missing" if "token" in user else "c"
    doc = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": cluster, "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://k:6443"}}],
        "users": [{"name": "u", "user": user}],
    }
    with pytest.raises(KubeConfigError, match=message):
        from_kubeconfig_doc(doc, Path("."))


def test_in_cluster(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="not in a cluster"):
        in_cluster({}, tmp_path)
    with pytest.raises(KubeConfigError, match="no ServiceAccount token"):
        in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "namespace").write_text("prod")
    access = in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}, tmp_path)
    assert access.server == "https://[fd00::1]:6443" and access.namespace == "prod"
    assert access.auth_headers() == {"Authorization": "Bearer tok"}
