"""Operator benchmark against the local control plane (`make cluster-up` first); rewrites the `operator`
section of docs/benchmarks.md.

    .venv/bin/python bench/operator/bench_operator.py [--latency 50] [--scale 1000]

1. Latency: `--latency` ModelDeployments created one at a time; for each, time from the create call until
   all its children exist (Deployment + 2 Services), and until `status.phase` is Healthy (kwok marks pods
   Ready).
2. Scale: `--scale` ModelDeployments created at once; time until all are Healthy, the operator's RSS, API
   writes per object during convergence, and API writes per object during a quiet period spanning a full
   resync.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
from devcluster import benchmarks_doc  # noqa: E402
from devcluster.crds import wait_crd_established  # noqa: E402
from devcluster.nodes import node_manifest  # noqa: E402

GROUP, VERSION, PLURAL = "serving.modeldeploy.dev", "v1alpha1", "modeldeployments"
RESYNC = 30
EXTRA_NODE_BASE = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"name": "iris", "format": "sklearn", "uri": "https://store.example/iris/model.joblib"},
                 "serving": {"replicas": 1, "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}},
    }


class Operator:
    def __init__(self, env: dict[str, str], namespace_glob: str, log: Path) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        env = {k: v for k, v in env.items() if not k.startswith("MODELDEPLOY_")}
        env.update(MODELDEPLOY_METRICS_PORT=str(self.metrics_port),
                   MODELDEPLOY_HEALTH_PORT=str(self.health_port), MODELDEPLOY_CHECK_MODEL_URI="false",
                   MODELDEPLOY_NAMESPACES=namespace_glob,
                   MODELDEPLOY_RESYNC_SECONDS=str(RESYNC), MODELDEPLOY_LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen([sys.executable, "-m", "modeldeploy"], env=env, stdout=log.open("wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).close()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"operator did not start; see {log}")

    def metric_sum(self, prefix: str, contains: tuple[str, ...] = ()) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            lines = r.read().decode().splitlines()
        total = 0.0
        for line in lines:
            if line.startswith(prefix) and (not contains or any(c in line for c in contains)):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def writes(self) -> float:
        verbs = ('verb="apply"', 'verb="apply_status"', 'verb="delete"', 'verb="create_event"')
        return self.metric_sum("modeldeploy_api_requests_total{", verbs)

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident set size."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in text.splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(crd: client.CustomObjectsApi, core: client.CoreV1Api, apps: client.AppsV1Api, ns: str,
            count: int) -> tuple[list[float], list[float]]:
    children_s, ready_s = [], []
    for i in range(count):
        name = f"lat-{i}"
        selector = f"serving.modeldeploy.dev/modeldeployment={name}"
        t0 = time.perf_counter()
        crd.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest(name))
        t_children = t_ready = None
        while t_ready is None or t_children is None:
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"{name} did not converge in 120s")
            if t_children is None:
                # Model server and router Deployments; the ModelDeployment's Service (on the router) and the
                # revision's; the router's route table.
                deps = apps.list_namespaced_deployment(ns, label_selector=selector).items
                svcs = core.list_namespaced_service(ns, label_selector=selector).items
                tables = core.list_namespaced_config_map(ns, label_selector=selector).items
                if len(deps) == 2 and len(svcs) == 2 and len(tables) == 1:
                    t_children = time.perf_counter() - t0
            obj = cast(dict[str, Any], crd.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))
            if (obj.get("status") or {}).get("phase") == "Healthy":
                t_ready = time.perf_counter() - t0
            time.sleep(0.02)
        children_s.append(t_children)
        ready_s.append(t_ready)
    return children_s, ready_s


def scale(crd: client.CustomObjectsApi, op: Operator, ns: str, count: int) -> dict[str, float]:
    writes0 = op.writes()
    reconciles0 = op.metric_sum("modeldeploy_reconciles_total{")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: crd.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                                    manifest(f"s-{i}")), range(count)))
    created = time.perf_counter() - t0
    peak_rss = 0.0
    healthy = 0
    while True:
        listed = cast(dict[str, Any], crd.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL))
        items = listed["items"]
        healthy = sum(1 for o in items if (o.get("status") or {}).get("phase") == "Healthy")
        peak_rss = max(peak_rss, op.rss_mib()[0])
        if healthy >= count:
            break
        if time.perf_counter() - t0 > 3600:
            raise RuntimeError(f"only {healthy}/{count} Healthy after an hour")
        time.sleep(2)
    converged = time.perf_counter() - t0
    writes_converge = op.writes() - writes0
    reconciles = op.metric_sum("modeldeploy_reconciles_total{") - reconciles0
    quiet0, quiet_t0 = op.writes(), time.perf_counter()
    time.sleep(RESYNC + 15)  # spans at least one full resync of every object
    quiet_writes = op.writes() - quiet0
    rss, hwm = op.rss_mib()
    return {"count": count, "create_s": created, "converge_s": converged, "writes_converge": writes_converge,
            "reconciles": reconciles, "quiet_s": time.perf_counter() - quiet_t0, "quiet_writes": quiet_writes,
            "rss_mib": rss, "peak_rss_mib": max(peak_rss, hwm)}


def write_section(text: str) -> None:
    """Rewrites the `operator` section of docs/benchmarks.md."""
    benchmarks_doc.write_section("operator", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--scale", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true",
                        help="print results, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    kubeconfig = os.environ.get("KUBECONFIG") or str(REPO / ".cluster" / "kubeconfig")
    bin_dir = Path.home() / ".cache" / "modeldeploy" / "bin"
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    wait_crd_established(f"{PLURAL}.{GROUP}", env)
    # 110 pods per kwok node: enough extra nodes for every benchmark pod (a model server and two routers each)
    extra_nodes = 3 * (args.scale + args.latency) // 100 + 1
    nodes = [node_manifest(EXTRA_NODE_BASE + i) for i in range(extra_nodes)]
    kubectl(env, "apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    api.configuration.connection_pool_maxsize = 16
    crd, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    run = uuid.uuid4().hex[:6]
    lat_ns, scale_ns = f"bench-op-lat-{run}", f"bench-op-scale-{run}"
    log = REPO / ".cluster" / f"bench-operator-{run}.log"
    log.parent.mkdir(exist_ok=True)
    op = Operator(env, "bench-op-*", log)
    try:
        for ns in (lat_ns, scale_ns):
            kubectl(env, "create", "namespace", ns)
        children_s, ready_s = latency(crd, core, apps, lat_ns, args.latency)
        print(f"latency: children p50 {statistics.median(children_s):.3f}s, "
              f"ready p50 {statistics.median(ready_s):.3f}s", flush=True)
        result = scale(crd, op, scale_ns, args.scale)
        print(json.dumps(result, indent=1), flush=True)
    finally:
        op.stop()
        for ns in (lat_ns, scale_ns):
            subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], env=env,
                           capture_output=True, check=False)
        node_names = [cast(dict[str, str], node["metadata"])["name"] for node in nodes]
        subprocess.run(["kubectl", "delete", "node", *node_names, "--wait=false"], env=env,
                       capture_output=True, check=False)

    load = os.getloadavg()[0]
    n, ms = args.scale, 1000
    rows = [
        (f"apply -> all children created, p50 / p95 ({args.latency} objects, one at a time)",
         f"{statistics.median(children_s) * ms:.0f} ms / {pct(children_s, 0.95) * ms:.0f} ms"),
        ("apply -> status Healthy, p50 / p95",
         f"{statistics.median(ready_s) * ms:.0f} ms / {pct(ready_s, 0.95) * ms:.0f} ms"),
        (f"{n} ModelDeployments created at once -> all Healthy",
         f"{result['converge_s']:.1f} s (creates took {result['create_s']:.1f} s)"),
        ("operator RSS after convergence / peak",
         f"{result['rss_mib']:.0f} MiB / {result['peak_rss_mib']:.0f} MiB"),
        ("API writes per object during convergence (children, status, events)",
         f"{result['writes_converge'] / n:.1f}"),
        ("reconcile passes per object during convergence", f"{result['reconciles'] / n:.1f}"),
        (f"API writes per object at steady state ({result['quiet_s']:.0f} s quiet, incl. a full resync)",
         f"{result['quiet_writes'] / n:.3f}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    text = f"""## Operator (operator)

Reproduce: `make cluster-up && .venv/bin/python bench/operator/bench_operator.py \\
--latency {args.latency} --scale {n}`.
Local control plane (etcd, kube-apiserver, controller-manager, scheduler; kwok nodes mark pods Ready
without running them), operator as a separate process with default settings (4 reconcile workers), all
on the same machine ({os.cpu_count()} CPUs, Python {platform.python_version()}, load avg {load:.1f} at the
end). Each ModelDeployment: 1 replica, no autoscaling, the default router traffic provider -> 2 Deployments
(model server; router, 2 replicas), 2 Services, the route table ConfigMap, the router's ServiceAccount, Role
and RoleBinding. Timings include the controller-manager and scheduler.

| measure | value |
|---|---:|
{table}
"""
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
