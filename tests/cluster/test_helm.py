"""The Helm chart on a real control plane: install/upgrade/uninstall, server-side dry run of every object,
RBAC that covers each API call of the operator, and the operator running under the chart's ServiceAccount."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.crds import wait_crd_established
from tests.conftest import ClusterHandle, Kubectl
from tests.unit.helm.chart import (
    CHART,
    KOPF_NAMESPACES,
    KOPF_SCANNING,
    REPO,
    VALUES,
    Access,
    accesses_for_call,
    documents,
    helm,
    required_namespaced,
)

pytestmark = pytest.mark.cluster

PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.76.2"
MONITORING_CRDS = ("servicemonitors", "podmonitors", "prometheusrules")


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def get_json(kubectl: Kubectl, *args: str) -> Any:
    result = kubectl("get", *args, "-o", "json", check=True)
    return json.loads(result.stdout)


class Release:
    """One helm release of the chart in a test namespace; uninstalled at the end whatever happens."""

    def __init__(self, cluster: ClusterHandle, namespace: str, name: str | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name or namespace
        self.fullname = f"{self.name}-modeldeploy"

    def helm(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return helm(*args, env=self.cluster.env, timeout=timeout)

    def install(self, *args: str, verb: str = "install") -> subprocess.CompletedProcess[str]:
        return self.helm(
            verb, self.name, str(CHART), "--namespace", self.namespace, "--wait", "--timeout", "5m", *args
        )

    def uninstall(self) -> None:
        helm(
            "uninstall",
            self.name,
            "--namespace",
            self.namespace,
            "--wait",
            "--timeout",
            "3m",
            "--ignore-not-found",
            env=self.cluster.env,
            timeout=300,
            check=False,
        )


@pytest.fixture
def release(cluster: ClusterHandle, namespace: str) -> Iterator[Release]:
    rel = Release(cluster, namespace)
    try:
        yield rel
    finally:
        rel.uninstall()


@pytest.fixture
def unwatched_release(cluster: ClusterHandle, kubectl: Kubectl) -> Iterator[Release]:
    """A release in a namespace outside the session operator's `t-*` pattern (tests/cluster/conftest.py): the
    operator under test must be the only one reconciling there, or another one's calls would be counted."""
    ns = f"helm-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns, check=True)
    rel = Release(cluster, ns)
    try:
        yield rel
    finally:
        rel.uninstall()
        kubectl("delete", "namespace", ns, "--wait=false")


def labelled(kubectl: Kubectl, kinds: str, selector: str, namespace: str | None) -> list[str]:
    scope = ["-n", namespace] if namespace else []
    out = kubectl("get", kinds, *scope, "-l", selector, "-o", "name", check=True).stdout
    return out.split()


def pod_ready(kubectl: Kubectl, namespace: str, selector: str) -> bool:
    pods = get_json(kubectl, "pods", "-n", namespace, "-l", selector)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return len(live) == 1 and any(
        c["type"] == "Ready" and c["status"] == "True" for c in live[0]["status"].get("conditions", [])
    )


def test_install_upgrade_uninstall(release: Release, kubectl: Kubectl) -> None:
    ns, selector = release.namespace, f"app.kubernetes.io/instance={release.name}"
    out = release.install().stdout
    assert f"kubectl -n {ns} rollout status deployment/{release.fullname}" in out, "NOTES.txt not shown"
    dep = get_json(kubectl, "deployment", release.fullname, "-n", ns)
    assert dep["status"]["readyReplicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    assert pod_ready(kubectl, ns, f"{selector},app.kubernetes.io/component=operator")
    assert labelled(kubectl, "clusterroles,clusterrolebindings", selector, None)

    release.install("--reuse-values", "--set", "log.level=DEBUG", verb="upgrade")
    dep = get_json(kubectl, "deployment", release.fullname, "-n", ns)
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELDEPLOY_LOG_LEVEL"] == "DEBUG"
    assert dep["metadata"]["generation"] == 2 and dep["status"]["observedGeneration"] == 2
    wait_for(
        lambda: pod_ready(kubectl, ns, f"{selector},app.kubernetes.io/component=operator"),
        180,
        "the upgraded operator pod to be Ready",
    )
    history = json.loads(release.helm("history", release.name, "-n", ns, "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "deployed"]

    release.uninstall()
    namespaced = "all,serviceaccounts,roles,rolebindings,configmaps,secrets"
    wait_for(lambda: not labelled(kubectl, namespaced, selector, ns), 180, "the release's objects to go")
    assert not labelled(kubectl, "clusterroles,clusterrolebindings", selector, None)
    assert not labelled(kubectl, "secrets", f"owner=helm,name={release.name}", ns), (
        "helm release records left"
    )
    # What Helm leaves behind on purpose: the CRD (it never deletes crds/).
    kubectl("get", "crd", "modeldeployments.serving.modeldeploy.dev", check=True)


# ----------------------------------------------------------------------- server-side dry run of everything


@pytest.fixture(scope="session")
def monitoring_crds(cluster: ClusterHandle, kubectl: Kubectl) -> None:
    """prometheus-operator's CRDs from its Go module (as hack/build-binaries.sh does for Gateway API), so that
    ServiceMonitor, PodMonitor and PrometheusRule can be dry-run against their real schemas."""
    go = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, env=cluster.env, check=False
    )
    if go.returncode != 0:
        raise AssertionError(
            "`go` not found on PATH: it is needed to fetch prometheus-operator's CRDs "
            "(make binaries installs it)"
        )
    result = subprocess.run(
        ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
        capture_output=True,
        text=True,
        env={**cluster.env, "GOFLAGS": "-mod=mod"},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"go mod download {PROMETHEUS_OPERATOR}: {result.stdout}{result.stderr}"
    crd_dir = Path(json.loads(result.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    for plural in MONITORING_CRDS:
        kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(crd_dir / f"monitoring.coreos.com_{plural}.yaml"),
            check=True,
        )
    for plural in MONITORING_CRDS:
        wait_crd_established(f"{plural}.monitoring.coreos.com", cluster.env, timeout=120)


@pytest.mark.parametrize("values", ["default", "namespaced", "monitoring"])
def test_every_rendered_object_passes_server_side_dry_run(
    values: str, monitoring_crds: None, cluster: ClusterHandle, kubectl: Kubectl, namespace: str
) -> None:
    # Every namespace the values name becomes this test's namespace: namespaced objects can be checked.
    sets = ["--set", f"prometheus.authSecret.namespace={namespace}", "--set", "grafanaDashboard.namespace="]
    if values == "namespaced":
        sets += ["--set", f"watchNamespaces={{{namespace}}}"]
    sets += ["--set", "servingMetrics.podMonitor.enabled=true"]
    rendered = helm(
        "template",
        namespace,
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(VALUES / f"{values}.yaml"),
        *sets,
        env=cluster.env,
    ).stdout
    docs = documents(rendered)
    assert len(docs) >= 7
    result = kubectl(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--field-manager=helm-test",
        "-n",
        namespace,
        "-o",
        "json",
        "-f",
        "-",
        stdin=rendered,
    )
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout)
    items = applied.get("items", [applied])
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in docs
    )
    # A dry run stores nothing.
    assert not labelled(kubectl, "deployments", f"app.kubernetes.io/instance={namespace}", namespace)


def test_crd_from_the_chart_passes_server_side_dry_run(kubectl: Kubectl) -> None:
    crd = CHART / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"
    result = kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", str(crd))
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------------- RBAC


def can(k8s_api: Any, user: str, namespace: str | None, access: Access) -> bool:
    from kubernetes import client

    resource, _, sub = access.resource.partition("/")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{user.split(':')[2]}",
                "system:authenticated",
            ],
            resource_attributes=client.V1ResourceAttributes(
                group=access.group,
                resource=resource,
                subresource=sub or None,
                verb=access.verb,
                namespace=namespace,
            ),
        )
    )
    answer = client.AuthorizationV1Api(k8s_api).create_subject_access_review(review)
    assert answer.status is not None
    return bool(answer.status.allowed)


FORBIDDEN = [
    Access("serving.modeldeploy.dev", "modeldeployments", "patch"),
    Access("serving.modeldeploy.dev", "modeldeployments", "update"),
    Access("serving.modeldeploy.dev", "modeldeployments", "delete"),
    Access("serving.modeldeploy.dev", "modeldeployments", "create"),
    Access("", "secrets", "get"),
    Access("", "secrets", "list"),
    Access("", "pods", "create"),
    Access("", "pods", "exec"),
    Access("apps", "deployments", "update"),
    Access("rbac.authorization.k8s.io", "clusterroles", "create"),
    Access("rbac.authorization.k8s.io", "roles", "escalate"),
    Access("", "namespaces", "delete"),
]


def test_cluster_wide_rbac_allows_every_call_of_the_operator(release: Release, k8s_api: Any) -> None:
    release.install()
    user = f"system:serviceaccount:{release.namespace}:{release.fullname}"
    elsewhere = "default"  # cluster-wide: any namespace
    denied = [a for a in sorted(required_namespaced()) if not can(k8s_api, user, elsewhere, a)]
    assert not denied, f"the chart's ServiceAccount may not: {', '.join(map(str, denied))}"
    denied = [a for a in sorted(KOPF_SCANNING) if not can(k8s_api, user, None, a)]
    assert not denied, f"kopf's scanning is denied: {denied}"
    allowed = [a for a in FORBIDDEN if can(k8s_api, user, elsewhere, a)]
    assert not allowed, f"the chart grants too much: {', '.join(map(str, allowed))}"


def test_namespaced_rbac_is_confined(
    cluster: ClusterHandle, kubectl: Kubectl, namespace: str, k8s_api: Any
) -> None:
    watched = f"{namespace}-w"
    kubectl("create", "namespace", watched, check=True)
    rel = Release(cluster, namespace)
    try:
        rel.install("--set", f"watchNamespaces={{{watched}}}")
        user = f"system:serviceaccount:{namespace}:{rel.fullname}"
        denied = [a for a in sorted(required_namespaced()) if not can(k8s_api, user, watched, a)]
        assert not denied, f"denied in the watched namespace: {', '.join(map(str, denied))}"
        leaked = [a for a in sorted(required_namespaced()) if can(k8s_api, user, "default", a)]
        assert not leaked, f"allowed outside the watched namespaces: {', '.join(map(str, leaked))}"
        assert all(can(k8s_api, user, None, a) for a in KOPF_SCANNING | KOPF_NAMESPACES)
    finally:
        rel.uninstall()
        kubectl("delete", "namespace", watched, "--wait=false")


# --------------------------------------------------------- the operator, for real, under the chart's identity


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_account_kubeconfig(kubectl: Kubectl, namespace: str, sa: str, path: Path) -> Path:
    token = kubectl("create", "token", sa, "-n", namespace, "--duration=2h", check=True).stdout.strip()
    admin = json.loads(
        kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json", check=True).stdout
    )
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": sa, "namespace": namespace}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def api_calls(metrics_port: int) -> dict[tuple[str, str], float]:
    """(verb, kind) -> requests, from the operator's own modeldeploy_api_requests_total counter."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    calls: dict[tuple[str, str], float] = {}
    for m in re.finditer(r"^modeldeploy_api_requests_total\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        calls[(labels["verb"], labels["kind"])] = float(m.group(2))
    return calls


def md_status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    md = get_json(kubectl, "modeldeployment", name, "-n", namespace)
    status: dict[str, Any] = md.get("status") or {}
    status["_generation"] = md["metadata"]["generation"]
    return status


def healthy(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Healthy" and status.get("observedGeneration") == status["_generation"]


@pytest.mark.slow
def test_operator_reconciles_under_the_chart_service_account(
    unwatched_release: Release, cluster: ClusterHandle, kubectl: Kubectl, tmp_path: Path
) -> None:
    """Runs `python -m modeldeploy` with nothing but a token of the chart's ServiceAccount (cluster-wide
    RBAC), watching only this test's namespace, through a rollout; no call may be refused, and every call it
    made is one the RBAC derivation in tests/unit/helm/chart.py accounts for."""
    release = unwatched_release
    ns = release.namespace
    release.install()
    kubeconfig = service_account_kubeconfig(kubectl, ns, release.fullname, tmp_path / "sa.kubeconfig")
    metrics_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_")},
        "KUBECONFIG": str(kubeconfig),  # kopf's own connection
        "MODELDEPLOY_NAMESPACES": ns,
        "MODELDEPLOY_HEALTH_PORT": str(free_port()),
        "MODELDEPLOY_METRICS_PORT": str(metrics_port),
        "MODELDEPLOY_CHECK_MODEL_URI": "false",
        "MODELDEPLOY_LOG_FORMAT": "text",
        "MODELDEPLOY_RESYNC_SECONDS": "30",
    }
    log_path = tmp_path / "operator.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeploy", "--kubeconfig", str(kubeconfig)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )

    def log_tail() -> str:
        return "\n".join(log_path.read_text().splitlines()[-40:])

    try:
        example = yaml.safe_load((REPO / "examples" / "sklearn-iris.yaml").read_text())
        example["spec"]["serving"]["replicas"] = 1
        kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(example), check=True)
        name = example["metadata"]["name"]
        try:
            wait_for(
                lambda: healthy(md_status(kubectl, ns, name)), 300, "the ModelDeployment to be Healthy", 2
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; status {md_status(kubectl, ns, name)}\n{log_tail()}") from None
        first = md_status(kubectl, ns, name)["stableRevision"]

        # A new model version: a new revision rolls out (strategy Rolling) and replaces the old one.
        patch = {
            "spec": {"model": {"version": "2", "uri": "https://models.modeldeploy.dev/iris/2/model.joblib"}}
        }
        kubectl(
            "patch", "modeldeployment", name, "-n", ns, "--type=merge", "-p", json.dumps(patch), check=True
        )

        def promoted() -> bool:
            s = md_status(kubectl, ns, name)
            return healthy(s) and s.get("stableRevision") not in (None, first)

        try:
            wait_for(promoted, 300, "the new revision to be promoted", 2)
        except AssertionError as e:
            raise AssertionError(f"{e}; status {md_status(kubectl, ns, name)}\n{log_tail()}") from None
        # The old revision is kept as a rollback target: scaled to zero (a scale by the chart's
        # ServiceAccount) once scaleDownDelaySeconds (30 s by default) has passed, not deleted.
        old = f"serving.modeldeploy.dev/revision={first}"

        def old_at_zero() -> bool:
            deps = get_json(kubectl, "deployments", "-n", ns, "-l", old)["items"]
            return [d["spec"]["replicas"] for d in deps] == [0]

        wait_for(old_at_zero, 180, "the old revision's Deployment to be scaled to zero and kept")
        assert labelled(kubectl, "services", old, ns), "the rollback target keeps its Service"
        events = get_json(kubectl, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
        assert {e["reason"] for e in events["items"]} & {"Created", "Promoted", "Ready"}, "no operator Events"

        # Why Argo CD needs no ignoreDifferences: the operator owns nothing of the object but its status.
        md = get_json(kubectl, "modeldeployment", name, "-n", ns, "--show-managed-fields")
        assert not md["metadata"].get("finalizers"), md["metadata"]
        assert not [k for k in md["metadata"].get("annotations", {}) if "kopf" in k], md["metadata"]
        ours = [m for m in md["metadata"]["managedFields"] if m["manager"] == "modeldeploy"]
        assert ours and all(m.get("subresource") == "status" for m in ours), md["metadata"]["managedFields"]

        calls = api_calls(metrics_port)
        assert proc.poll() is None, f"the operator exited:\n{log_tail()}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    text = log_path.read_text()
    refused = [
        line
        for line in text.splitlines()
        if re.search(r"(?<![,.:])\b403\b(?![,.:]\d)|[Ff]orbidden", line) and "namespaces" not in line
    ]  # kopf may not list namespaces with cluster-wide RBAC: by design
    assert not refused, "API calls were refused:\n" + "\n".join(refused[:20])
    assert calls, "no API calls counted"
    writes = {
        verb for (verb, _), n in calls.items() if n and verb in ("apply", "apply_status", "create_event")
    }
    assert writes == {"apply", "apply_status", "create_event"}, calls
    unaccounted = {
        (verb, kind)
        for (verb, kind), n in calls.items()
        if n and not accesses_for_call(verb, kind) <= required_namespaced()
    }
    assert not unaccounted, f"calls the RBAC derivation does not account for: {sorted(unaccounted)}"
