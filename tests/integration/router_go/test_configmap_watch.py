"""The Go router watching its ConfigMap through the real local kube-apiserver (tests/conftest.py cluster)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ClusterHandle, Kubectl
from tests.integration.router.harness import get_json, metric, overrides, table
from tests.integration.router_go.conftest import GoProcesses

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _configmap(namespace: str, doc: object) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "demo-routes", "namespace": namespace},
            "data": {"routes.json": doc if isinstance(doc, str) else json.dumps(doc)},
        }
    )


def _backend(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(json.loads(resp.read())["backend"])


def test_configmap_watch_applies_changes_and_keeps_last_good(
    procs: GoProcesses, tmp_path: Path, cluster: ClusterHandle, kubectl: Kubectl, namespace: str
) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    kubectl(
        "apply", "-f", "-", stdin=_configmap(namespace, table({"stable": 100, "canary": 0}, "k0")), check=True
    )
    router = procs.router(
        [*overrides(ups), "--log-level", "DEBUG"],
        env={
            "MDROUTE_CONFIGMAP": "demo-routes",
            "MDROUTE_NAMESPACE": namespace,
            "KUBECONFIG": str(cluster.kubeconfig),
        },
    )
    assert get_json(router.url + "/-/routes")["source"] == "kubernetes"
    url = router.url + "/x"
    assert _backend(url) == "stable"

    delays = []
    for n, target in enumerate(["canary", "stable", "canary"], start=1):
        weights = {"stable": 0, "canary": 100} if target == "canary" else {"stable": 100, "canary": 0}
        started = time.perf_counter()
        kubectl("apply", "-f", "-", stdin=_configmap(namespace, table(weights, f"k{n}")), check=True)
        while _backend(url) != target:
            assert time.perf_counter() - started < 5, f"change {n} not applied"
            time.sleep(0.01)
        delays.append(time.perf_counter() - started)
    assert max(delays) < 1.0 + 1.0, delays  # kubectl itself takes part of that (process start)

    kubectl("apply", "-f", "-", stdin=_configmap(namespace, '{"version": "bad", "variants": []}'), check=True)
    deadline = time.monotonic() + 5
    while metric(router.url, "mdroute_table_rejected") != 1:
        assert time.monotonic() < deadline, "invalid table not reported"
        time.sleep(0.05)
    view = get_json(router.url + "/-/routes")
    assert view["version"] == "k3" and "at least one variant is required" in view["last_error"]
    assert (
        metric(router.url, "mdroute_table_reloads_total", {"source": "kubernetes", "outcome": "invalid"}) == 1
    )
    assert _backend(url) == "canary"

    kubectl("delete", "configmap", "demo-routes", "-n", namespace, check=True)
    deadline = time.monotonic() + 5
    while "was deleted" not in str(get_json(router.url + "/-/routes")["last_error"]):
        assert time.monotonic() < deadline, "deletion not reported"
        time.sleep(0.05)
    assert _backend(url) == "canary"  # the table in use is never dropped
    kubectl(
        "apply", "-f", "-", stdin=_configmap(namespace, table({"stable": 100, "canary": 0}, "k4")), check=True
    )
    deadline = time.monotonic() + 5
    while _backend(url) != "stable":
        assert time.monotonic() < deadline, "re-created ConfigMap not applied"
        time.sleep(0.02)
