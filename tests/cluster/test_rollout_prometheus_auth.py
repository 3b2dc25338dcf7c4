"""Canary analysis against a Prometheus that demands credentials (its own `--web.config.file` basic auth),
inside the running operator: the credentials come from a `kubernetes.io/basic-auth` Secret named by
`spec.rollout.prometheus.authSecretRef`; wrong ones are provider errors, never a pass."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.conftest import OperatorProcess, canary_md, wait_rollout
from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster

USER, PASSWORD = "analysis", "s3cret:with-colon"


@pytest.fixture(scope="module")
def guarded_prometheus() -> Iterator[str]:
    from devcluster.prometheus import PrometheusServer

    with PrometheusServer([], interval="5s", basic_auth=(USER, PASSWORD)) as server:
        yield server.url


def deploy(kubectl: Kubectl, ns: str, name: str, url: str, password: str, extra: str = "") -> None:
    """A basic-auth Secret and a Canary ModelDeployment whose analysis reads it."""
    kubectl("create", "secret", "generic", f"{name}-prom", "-n", ns, "--type=kubernetes.io/basic-auth",
            f"--from-literal=username={USER}", f"--from-literal=password={password}", check=True)
    manifest = yaml.safe_load(canary_md(name, url, extra=extra))
    manifest["spec"]["rollout"]["prometheus"]["authSecretRef"] = {"name": f"{name}-prom"}
    kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(manifest), check=True)


def new_version(kubectl: Kubectl, ns: str, name: str) -> None:
    patch = json.dumps({"spec": {"model": {"version": "2"}}})
    kubectl("patch", "md", name, "-n", ns, "--type=merge", "-p", patch, check=True)


def healthy(kubectl: Kubectl, ns: str, name: str, op: OperatorProcess) -> str:
    status = wait_rollout(kubectl, ns, name, "Healthy and stable",
                          lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"), op)
    return str(status["stableRevision"])


def test_basic_auth_secret_lets_the_analysis_pass(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, guarded_prometheus: str,
) -> None:
    deploy(kubectl, namespace, "authed", guarded_prometheus, PASSWORD)
    first = healthy(kubectl, namespace, "authed", running_operator)
    new_version(kubectl, namespace, "authed")

    def promoted(s: dict[str, object]) -> bool:
        assert s.get("phase") != "Degraded", s.get("message")
        return s.get("stableRevision") not in (None, first) and s.get("phase") == "Healthy"

    status = wait_rollout(kubectl, namespace, "authed", "the canary promoted", promoted, running_operator)
    analyses = [t for t in status["rollout"]["timeline"] if t["kind"] == "Analysis"]
    assert analyses and all(t["outcome"] == "Pass" for t in analyses), analyses


def test_wrong_password_is_a_provider_error_and_rolls_back_at_the_limit(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, guarded_prometheus: str,
) -> None:
    deploy(kubectl, namespace, "denied", guarded_prometheus, "wrong", extra="    consecutiveErrorLimit: 1\n")
    first = healthy(kubectl, namespace, "denied", running_operator)
    new_version(kubectl, namespace, "denied")

    status = wait_rollout(kubectl, namespace, "denied", "the rollback",
                          lambda s: s.get("phase") == "Degraded", running_operator)
    assert status["stableRevision"] == first
    assert "consecutiveErrorLimit 1" in status["message"] and "401" in status["message"], status["message"]
    outcomes = {t.get("outcome") for t in status["rollout"]["timeline"] if t["kind"] == "Analysis"}
    assert outcomes == {"Error"}, status["rollout"]["timeline"]
