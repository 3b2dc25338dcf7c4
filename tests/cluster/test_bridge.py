"""The pod bridge runs real processes behind kwok-simulated Deployments and publishes where they listen."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.bridge import BridgeOptions, PodBridge
from devcluster.prometheus import PrometheusServer
from tests.conftest import ClusterHandle, Kubectl

pytestmark = pytest.mark.cluster

ECHO = Path(__file__).resolve().parent / "bridge_echo_server.py"
MANAGED = {"app.kubernetes.io/managed-by": "modeldeploy"}


def deployment(name: str, command: list[str], env: dict[str, str], labels: dict[str, str] | None = None,
               replicas: int = 1) -> dict[str, Any]:
    # The managed-by label on pods hands their readiness to the bridge (kwok_readiness.py).
    pod_labels = {"app": name, **MANAGED, **(labels or {})}
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    env_list += [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING_FROM", "value": "$(POD_NAME)"},
    ]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {**MANAGED}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {"prometheus.io/path": "/metrics"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "main", "image": "registry.example/echo:1", "command": command,
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": env_list,
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                    }],
                },
            },
        },
    }


def service(name: str, selector: dict[str, str], port: int = 80, target: int | str = "http"
            ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": target}]}}


def apply(kubectl: Kubectl, namespace: str, *objects: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(objects), check=True)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def bridge(cluster: ClusterHandle, namespace: str, tmp_path: Path) -> Iterator[PodBridge]:
    options = BridgeOptions(tmp_path / "bridge", [namespace], kubeconfig=cluster.kubeconfig,
                            backoff=(0.5, 2.0))
    with PodBridge(options) as b:
        yield b
    # stop() leaves nothing behind: every process it started is gone and the published files are empty.
    assert json.loads(options.map_file.read_text()) == {}
    assert json.loads(options.file_sd.read_text()) == []


def test_runs_maps_restarts_and_stops_a_deployment(bridge: PodBridge, kubectl: Kubectl,
                                                   namespace: str) -> None:
    apply(kubectl, namespace, deployment("echo", ["python", str(ECHO)], {"GREETING": "v1"}),
          service("echo", {"app": "echo"}))
    first = bridge.wait_ready(namespace, "echo", timeout=120)
    assert first.pid and first.port and pid_alive(first.pid)

    # The Service resolves, in every in-cluster spelling, to a loopback port that answers.
    doc = json.loads(bridge.options.map_file.read_text())
    local = [f"127.0.0.1:{first.port}"]
    assert doc[f"echo.{namespace}.svc:80"] == local
    assert doc[f"echo.{namespace}.svc.cluster.local:80"] == local
    assert doc["echo:80"] == local
    assert bridge.local_url("echo", namespace) == f"http://127.0.0.1:{first.port}"
    answer = get_json(f"http://{doc[f'echo.{namespace}.svc:80'][0]}/")
    assert answer["pid"] == first.pid
    env = answer["env"]
    assert env["GREETING"] == "v1" and env["MDSERVE_HOST"] == "127.0.0.1"
    assert env["POD_NAME"] == "echo" and env["POD_NAMESPACE"] == namespace and env["GREETING_FROM"] == "echo"

    # A scale-up changes no template: same process.
    kubectl("scale", "deployment/echo", "-n", namespace, "--replicas=2", check=True)
    wait_until(lambda: kubectl("get", "deployment/echo", "-n", namespace, "-o",
                               "jsonpath={.status.readyReplicas}").stdout == "2", 120, "2 ready replicas")
    time.sleep(1.5)
    assert bridge.process(namespace, "echo") == first

    # A template change restarts it: new pid, new env, the old process is gone, the port is kept.
    kubectl("set", "env", "deployment/echo", "-n", namespace, "GREETING=v2", check=True)
    second = bridge.wait_running(namespace, "echo", timeout=60, not_pid=first.pid)
    bridge.wait_ready(namespace, "echo", timeout=60)
    assert not pid_alive(first.pid)
    assert second.port == first.port and second.restarts == 0
    assert get_json(f"{bridge.local_url('echo', namespace)}/")["env"]["GREETING"] == "v2"

    # Scaled to zero: stopped, and unpublished.
    kubectl("scale", "deployment/echo", "-n", namespace, "--replicas=0", check=True)
    bridge.wait_gone(namespace, "echo", timeout=60)
    assert second.pid and not pid_alive(second.pid)
    wait_until(lambda: json.loads(bridge.options.map_file.read_text()) == {}, 10, "empty service map")
    assert bridge.local_url("echo", namespace) is None

    # Back to one, then deleted: stopped again.
    kubectl("scale", "deployment/echo", "-n", namespace, "--replicas=1", check=True)
    third = bridge.wait_ready(namespace, "echo", timeout=120)
    kubectl("delete", "deployment/echo", "-n", namespace, check=True)
    bridge.wait_gone(namespace, "echo", timeout=60)
    assert third.pid and not pid_alive(third.pid)


def test_a_crashing_process_stays_broken_and_is_reported(bridge: PodBridge, kubectl: Kubectl,
                                                          namespace: str) -> None:
    apply(kubectl, namespace, deployment("broken", ["python", str(ECHO)], {"ECHO_EXIT_CODE": "3"}))

    def crash_looping() -> Any:
        s = bridge.process(namespace, "broken")
        return s if s and s.state == "backoff" and s.restarts >= 2 and s.last_exit_code == 3 else None

    crashed = bridge.wait_for(crash_looping, 120, "backoff after two restarts, exit code 3")
    assert "exited with code 3" in crashed.message and crashed.pid is None
    assert crashed.log_path and crashed.log_path.read_text().count("configured to fail") >= 3
    # It keeps its port: a crash-looping backend fails requests, it does not silently vanish.
    assert bridge.status()[(namespace, "broken")].port == crashed.port


def test_an_unrunnable_template_is_reported(bridge: PodBridge, kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, deployment("nope", ["no-such-binary-anywhere"], {}))
    status = bridge.wait_for(lambda: bridge.process(namespace, "nope"), 120, "a status for nope")
    assert status.state == "error" and "not on PATH" in status.message and status.pid is None


def test_prometheus_discovers_bridged_processes(bridge: PodBridge, kubectl: Kubectl, namespace: str) -> None:
    labels = {"example.io/variant": "canary", "example.io/revision": "abc123",
              "app.kubernetes.io/component": "model-server"}
    apply(kubectl, namespace, deployment("scraped", ["python", str(ECHO)], {}, labels))
    bridge.wait_ready(namespace, "scraped", timeout=120)
    with PrometheusServer([bridge.scrape_target("bridged")]) as prom:
        query = f'up{{job="bridged",namespace="{namespace}",pod="scraped"}}'
        series = wait_until(lambda: [r for r in prom.query(query) if r["value"][1] == "1"],  # type: ignore[index]
                            90, "up == 1 via file_sd")
        metric = series[0]["metric"]
        assert metric["variant"] == "canary" and metric["revision"] == "abc123"
        assert metric["component"] == "model-server"
        scraped = f'echo_requests_total{{namespace="{namespace}"}}'
        assert wait_until(lambda: prom.query(scraped), 60, "echo_requests_total scraped")
        # Deleted: Prometheus drops the target by itself.
        kubectl("delete", "deployment/scraped", "-n", namespace, check=True)
        bridge.wait_gone(namespace, "scraped", timeout=60)
        wait_until(lambda: not prom.query(query), 90, "target gone from Prometheus")


def test_serves_a_real_sklearn_model(bridge: PodBridge, kubectl: Kubectl, namespace: str,
                                     tmp_path: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mdserve.sources import artifact_sha256

    features, labels = load_iris(return_X_y=True)
    model_path = tmp_path / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), model_path)
    env = {"MDSERVE_MODEL_NAME": "iris", "MDSERVE_MODEL_URI": str(model_path),
           "MDSERVE_MODEL_FORMAT": "sklearn",
           "MDSERVE_MODEL_SHA256": artifact_sha256(model_path), "MDSERVE_HTTP_PORT": "8080",
           "MDSERVE_HOST": "0.0.0.0", "MDSERVE_CACHE_DIR": str(tmp_path / "cache")}
    dep = deployment("iris", ["mdserve", "serve"], env, {"example.io/variant": "stable"})
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/v2/health/ready"
    apply(kubectl, namespace, dep, service("iris", {"app": "iris"}, port=8080, target=8080))
    bridge.wait_ready(namespace, "iris", timeout=240)
    url = bridge.local_url("iris", namespace)
    assert url is not None and url == f"http://{bridge.service_map()[f'iris.{namespace}.svc:8080'][0]}"
    request = urllib.request.Request(
        f"{url}/v1/models/iris:predict", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]}).encode())
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert json.loads(resp.read()) == {"predictions": [0, 2]}
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'mdserve_requests_total{' in metrics and 'model="iris"' in metrics


def test_a_router_reaches_services_through_the_bridge(bridge: PodBridge, kubectl: Kubectl, namespace: str,
                                                      tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"version": "v1", "variants": [
        {"name": "stable", "backend": f"http://echo.{namespace}.svc:80", "weight": 1}]}))
    command = ["mdserve", "router", "--routes-file", str(routes)]
    router = deployment("router", command, {"MDROUTE_PORT": "8080"})
    router["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/-/ready"
    # The router starts before its backend exists, as when the operator creates everything at once.
    apply(kubectl, namespace, router, service("router", {"app": "router"}), service("echo", {"app": "echo"}))
    first = bridge.wait_ready(namespace, "router", timeout=120)
    apply(kubectl, namespace, deployment("echo", ["python", str(ECHO)], {}))
    echo = bridge.wait_ready(namespace, "echo", timeout=120)
    # The backend's address is new to the router: it is restarted with the override (same port).
    second = bridge.wait_running(namespace, "router", timeout=60, not_pid=first.pid)
    assert second.port == first.port
    url = bridge.local_url("router", namespace)
    assert url == f"http://127.0.0.1:{second.port}"

    def through_router() -> Any:
        try:
            return get_json(f"{url}/")
        except OSError:
            return None

    answer = wait_until(through_router, 60, "a request through the router")
    assert answer["pid"] == echo.pid


def test_cli_bridges_until_sigterm(cluster: ClusterHandle, kubectl: Kubectl, namespace: str,
                                   tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli = subprocess.Popen([sys.executable, "-m", "devcluster.bridge", "--namespace", namespace,
                            "--state-dir", str(state)], env=cluster.env, stdout=subprocess.DEVNULL,
                           stderr=(tmp_path / "bridge.log").open("wb"))
    try:
        apply(kubectl, namespace, deployment("echo", ["python", str(ECHO)], {}),
              service("echo", {"app": "echo"}))

        def mapped() -> list[str] | None:
            try:
                addresses: list[str] | None = json.loads((state / "services.json").read_text()).get("echo:80")
            except (OSError, ValueError):
                return None
            return addresses

        address = wait_until(mapped, 120, "echo:80 in the CLI's services.json")[0]
        pid = wait_until(lambda: _pid_at(address), 60, "the echo process answering")
        assert (state / "logs" / f"{namespace}_echo.log").exists()
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(60) == 0, (tmp_path / "bridge.log").read_text()
        assert not pid_alive(pid)
        assert json.loads((state / "services.json").read_text()) == {}
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def _pid_at(address: str) -> int | None:
    try:
        pid: int = get_json(f"http://{address}/")["pid"]
    except OSError:
        return None
    return pid
