"""Operator fixtures for cluster tests: the CRD installed, and the real operator running as a process."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.crds import wait_crd_established
from modeldeploy.kube.client import KubeClient, load_api_client
from modeldeploy.reconciler import Reconciler
from modeldeploy.settings import from_env
from tests.conftest import REPO_ROOT, ClusterHandle, Kubectl

CRD = REPO_ROOT / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"
GATEWAY_CRDS = Path.home() / ".cache" / "modeldeploy" / "gateway-api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90, interval: float = 0.5) -> Any:
    """Polls until `check()` is truthy; generous timeouts because the machine is small and busy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, IndexError, ValueError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class OperatorProcess:
    """`python -m modeldeploy` against the test cluster; its log goes to a file shown on failure."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = {
            **env,
            "MODELDEPLOY_METRICS_PORT": str(self.metrics_port),
            "MODELDEPLOY_HEALTH_PORT": str(self.health_port),
            # Example URIs point at hosts this sandbox cannot reach, and kwok pods never download anyway; the
            # check itself is exercised in test_op_model_check.py against a loopback model store.
            "MODELDEPLOY_CHECK_MODEL_URI": "false",
            "MODELDEPLOY_RESYNC_SECONDS": "60",
            # Only the `namespace` fixture's namespaces; in-process reconciler tests use other namespaces.
            "MODELDEPLOY_NAMESPACES": "t-*",
            "MODELDEPLOY_LOG_FORMAT": "text",
        }
        self.log_path = log_dir / "operator.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeploy"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        self.starts += 1
        wait_for("the operator's liveness endpoint", self.alive, timeout=60)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; log tail:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        """`name{labels}` -> value from /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) ([0-9.eE+-]+|NaN)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def writes(self) -> float:
        """API writes so far (applies, status applies, deletes, events) by this process."""
        verbs = ('verb="apply"', 'verb="apply_status"', 'verb="delete"', 'verb="create_event"')
        return sum(
            v
            for k, v in self.metrics().items()
            if k.startswith("modeldeploy_api_requests_total{") and any(x in k for x in verbs)
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl, cluster: ClusterHandle) -> Path:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD), check=True)
    wait_crd_established("modeldeployments.serving.modeldeploy.dev", cluster.env)
    return CRD


@pytest.fixture(scope="session")
def gateway_crds(kubectl: Kubectl, cluster: ClusterHandle) -> Path:
    """The Gateway API standard CRDs (HTTPRoute), installed once for the session."""
    if not list(GATEWAY_CRDS.glob("*.yaml")):
        pytest.fail(f"no Gateway API CRDs in {GATEWAY_CRDS}: run hack/build-binaries.sh")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(GATEWAY_CRDS), check=True)
    wait_crd_established("httproutes.gateway.networking.k8s.io", cluster.env)
    return GATEWAY_CRDS


@pytest.fixture(scope="session")
def operator(
    cluster: ClusterHandle, crd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    env = {k: v for k, v in cluster.env.items() if not k.startswith("MODELDEPLOY_")}
    op = OperatorProcess(env, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    op.stop()


@pytest.fixture
def running_operator(operator: OperatorProcess, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    """The session operator, restarted if a previous test stopped it; prints its log when a test fails."""
    if operator.proc is None:
        operator.start()
    yield operator
    if operator.proc is None:
        operator.start()


@pytest.fixture(scope="session")
def reconciler(cluster: ClusterHandle, crd: Path) -> Reconciler:
    """An in-process Reconciler with its own write counter, to prove a pass over a converged object writes
    nothing (the operator process serves every namespace, so its counters include other tests' churn)."""
    kube = KubeClient(load_api_client(str(cluster.kubeconfig)))
    return Reconciler(kube, from_env({}))


def get_json(kubectl: Kubectl, *args: str) -> Any:
    result = kubectl("get", *args, "-o", "json", check=True)
    return json.loads(result.stdout)


def condition(md: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (md.get("status") or {}).get("conditions", []):
        if c["type"] == ctype:
            return dict(c)
    return {}


@pytest.fixture(scope="session")
def prometheus() -> Iterator[str]:
    """A real Prometheus on loopback (no scrape targets: the rollout tests use constant PromQL such as
    `vector(1)`, so the analysis outcome is deterministic); yields its base URL."""
    from devcluster.prometheus import PrometheusServer

    with PrometheusServer([], interval="5s") as server:
        yield server.url


def md_manifest(name: str, rollout: str, version: str = "1") -> str:
    """A ModelDeployment serving a placeholder sklearn model; `rollout`: the lines of spec.rollout, indented
    by four spaces."""
    return f"""
apiVersion: serving.modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}}}
spec:
  model: {{name: {name}, format: sklearn, uri: "https://store.example/m/model.joblib", version: "{version}"}}
  rollout:
{rollout}"""


def canary_md(name: str, prometheus_url: str, *, version: str = "1", query: str = "vector(1)",
              max_value: float = 1.5, steps: str = "[{setWeight: 20, pause: {duration: 2s}}, "
              "{setWeight: 50, pause: {duration: 2s}}]", extra: str = "") -> str:
    """A Canary ModelDeployment with one custom analysis metric `check` (passes while query <= max_value)."""
    return md_manifest(name, f"""    strategy: Canary
    interval: 2s
    scaleDownDelaySeconds: 2
    prometheus: {{address: "{prometheus_url}", timeoutSeconds: 2}}
    steps: {steps}
    metrics: [{{name: check, query: "{query}", thresholdRange: {{max: {max_value}}}}}]
{extra}""", version)


def rollout_of(kubectl: Kubectl, ns: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(status, status.rollout) of a ModelDeployment."""
    status = get_json(kubectl, "md", name, "-n", ns).get("status") or {}
    return status, status.get("rollout") or {}


def wait_rollout(kubectl: Kubectl, ns: str, name: str, what: str, check: Callable[[dict[str, Any]], Any],
                 op: OperatorProcess, timeout: float = 120) -> dict[str, Any]:
    """Polls the status until `check(status)` holds; the operator log is shown on timeout."""

    def probe() -> dict[str, Any] | None:
        status = get_json(kubectl, "md", name, "-n", ns).get("status") or {}
        return status if check(status) else None

    try:
        result: dict[str, Any] = wait_for(f"{ns}/{name}: {what}", probe, timeout, interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}\noperator log:\n{op.log_tail()}") from e
    return result


def md_events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events on a ModelDeployment."""
    items = get_json(kubectl, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"], e.get("message", "")) for e in items]


def route_weights(kubectl: Kubectl, ns: str, name: str) -> dict[str, int]:
    """backend (`<variant>-<revision>`) -> weight in the router's table (ConfigMap `<name>-routes`)."""
    from mdserve.router.table import ROUTES_KEY, parse_table

    cm = get_json(kubectl, "configmap", f"{name}-routes", "-n", ns)
    return {v.name: v.weight for v in parse_table(cm["data"][ROUTES_KEY]).variants}


def wait_routed(kubectl: Kubectl, ns: str, name: str, expected: dict[str, int], op: OperatorProcess,
                timeout: float = 90) -> None:
    """Waits until Service `<name>` selects the router pods and the route table's backends with a positive
    weight are `expected` (a backend kept at 0 only holds its variant's slot)."""

    def check() -> bool:
        svc = get_json(kubectl, "service", name, "-n", ns)
        if svc["spec"]["selector"].get("app.kubernetes.io/component") != "router":
            return False
        return {b: w for b, w in route_weights(kubectl, ns, name).items() if w > 0} == expected

    try:
        wait_for(f"{ns}/{name}: Service on the router, table {expected}", check, timeout, interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}\noperator log:\n{op.log_tail()}") from e
