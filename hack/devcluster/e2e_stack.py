"""Everything but the pods, composed: cluster + CRD + namespace + pod bridge + Prometheus + the operator.

    with Stack(StackOptions(namespace="e2e-1a2b", workdir=tmp)) as stack:
        stack.apply(manifest)
        stack.wait(lambda: stack.phase("iris") == "Healthy", 180, "iris Healthy")
        with stack.traffic("iris") as load: ...

The operator runs as a process with MODELDEPLOY_PROMETHEUS_URL at the stack's Prometheus (1 s scrapes of
every bridged process through the bridge's file_sd) and MODELDEPLOY_CHECK_MODEL_URI=false. Parts can be
killed and started again (`kill_operator`, `start_operator`, `stop_prometheus`, `start_prometheus` on the same
port). `stop()` stops every process it started, in reverse order, even after a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devcluster.bridge import BridgeOptions, PodBridge
from devcluster.cluster import LocalCluster
from devcluster.crds import wait_crd_established
from devcluster.e2e_traffic import TrafficLoop
from devcluster.operator_process import OperatorProcess
from devcluster.paths import REPO_ROOT
from devcluster.prometheus import PrometheusServer

GROUP, VERSION, PLURAL = "serving.modeldeploy.dev", "v1alpha1", "modeldeployments"
_SAMPLE = re.compile(r'^mdroute_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


@dataclass
class StackOptions:
    namespace: str
    workdir: Path
    """Bridge state, process logs, operator log."""
    operator_env: dict[str, str] = field(default_factory=dict)
    """Extra operator env (over the stack's)."""
    use_existing_cluster: bool = os.environ.get("MODELDEPLOY_CLUSTER") == "existing"
    log: Callable[[str], None] = lambda msg: None


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.ns = options.namespace
        self.workdir = options.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.local = LocalCluster()
        self.env: dict[str, str] = dict(os.environ)
        self.kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        self.bridge: PodBridge | None = None
        self.prometheus: PrometheusServer | None = None
        self.operator: OperatorProcess | None = None
        self._prom_port: int | None = None
        self._api: Any = None

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        say = self.options.log
        if not self.options.use_existing_cluster:
            say("local control plane: up (idempotent)")
            self.local.up()
            self.env = {**os.environ, **self.local.env()}
            self.kubeconfig = self.local.paths.kubeconfig
        from kubernetes import config

        self._api = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        say("CRD: apply and wait until Established")
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))
        wait_crd_established(f"{PLURAL}.{GROUP}", {**self.env, "KUBECONFIG": str(self.kubeconfig)})
        if self.kubectl("get", "namespace", self.ns, check=False).returncode != 0:
            self.kubectl("create", "namespace", self.ns)
        say("pod bridge: model servers and routers as local processes")
        self.bridge = PodBridge(BridgeOptions(state_dir=self.workdir / "bridge", namespaces=[self.ns],
                                              kubeconfig=self.kubeconfig)).start()
        self.start_prometheus()
        self.start_operator()

    def stop(self) -> None:
        for part in (self.operator, self.bridge, self.prometheus):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # keep stopping the others
                    self.options.log(f"stopping {type(part).__name__} failed: {exc}")

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start_prometheus(self) -> PrometheusServer:
        """A Prometheus scraping every bridged process each second; the same port as the previous one."""
        assert self.bridge is not None
        prom = PrometheusServer([self.bridge.scrape_target()], interval="1s")
        if self._prom_port is not None:
            prom.port, prom.url = self._prom_port, f"http://127.0.0.1:{self._prom_port}"
        self._prom_port = prom.port
        self.options.log(f"Prometheus on {prom.url} (1 s scrapes of the bridged processes)")
        self.prometheus = prom.start()
        return prom

    def stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None

    @property
    def prometheus_url(self) -> str:
        assert self._prom_port is not None
        return f"http://127.0.0.1:{self._prom_port}"

    def start_operator(self) -> OperatorProcess:
        env = {"MODELDEPLOY_PROMETHEUS_URL": self.prometheus_url, "MODELDEPLOY_CHECK_MODEL_URI": "false",
               "MODELDEPLOY_RESYNC_SECONDS": "60", **self.options.operator_env}
        log_file = self.workdir / "operator.log"
        self.options.log(f"operator: python -m modeldeploy (log {log_file})")
        self.operator = OperatorProcess(self.kubeconfig, log_file, env=env, namespaces=[self.ns]).start()
        return self.operator

    def kill_operator(self) -> None:
        """SIGKILL, as a crash or an evicted pod would."""
        assert self.operator is not None
        self.operator.kill()

    # ---- the API -----------------------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                                env={**self.env, "KUBECONFIG": str(self.kubeconfig)}, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.ns, "-f", "-", stdin=json.dumps(manifest))

    def get(self, name: str) -> dict[str, Any]:
        from kubernetes import client

        md: Any = client.CustomObjectsApi(self._api).get_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name)
        return dict(md)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def rollout(self, name: str) -> dict[str, Any]:
        return self.status(name).get("rollout") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def delete(self, name: str) -> None:
        self.kubectl("delete", "md", name, "-n", self.ns, "--ignore-not-found", "--wait=false")

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events about the ModelDeployment, oldest first: {type, reason, message, count}."""
        from kubernetes import client

        items = client.CoreV1Api(self._api).list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=ModelDeployment").items
        items.sort(key=lambda e: str(e.metadata.creation_timestamp))
        return [{"type": e.type, "reason": e.reason, "message": e.message, "count": e.count} for e in items]

    def wait(self, check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll until `check()` is truthy (exceptions count as not yet); generous timeouts on a busy box."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = check()
            except Exception as exc:  # the API or a process not there yet
                last = exc
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
            time.sleep(interval)

    # ---- traffic -----------------------------------------------------------------------------------------
    def service_url(self, name: str) -> str | None:
        """The ModelDeployment's Service `<md>` on loopback (the router once the router provider runs)."""
        assert self.bridge is not None
        return self.bridge.local_url(name, self.ns)

    def ready_url(self, service: str) -> str | None:
        """`service_url`, but only while the bridge finds the process behind it ready (the pods Ready): what
        a Service does with Ready endpoints. The map alone also lists a process that is (re)starting."""
        url = self.service_url(service)
        assert self.bridge is not None
        if url is None or not any(p.url == url and p.ready for p in self.bridge.status().values()):
            return None
        return url

    def traffic(self, name: str, rate: float = 25.0, model: str = "iris", feedback: bool = True,
                max_seconds: float = 600) -> TrafficLoop:
        """Load on Service `name`; the feedback goes to the same Service, as a client's would: the router
        sends each row to the variant that served its prediction (docs/router.md, Feedback)."""
        return TrafficLoop(lambda: self.ready_url(name), model=model, rate=rate,
                           feedback_url_of=(lambda _variant: self.ready_url(name)) if feedback else None,
                           max_seconds=max_seconds)

    def router_url(self, name: str) -> str | None:
        """The router process of `<md>-router`, None while there is none."""
        assert self.bridge is not None
        proc = self.bridge.process(self.ns, f"{name}-router")
        return proc.url if proc is not None and proc.state == "running" else None

    def router_view(self, name: str) -> dict[str, Any] | None:
        """`GET /-/routes` of the router: the table in use, its version and when it was applied."""
        url = self.router_url(name)
        if url is None:
            return None
        try:
            with urllib.request.urlopen(f"{url}/-/routes", timeout=3) as resp:
                view: dict[str, Any] = json.loads(resp.read())
                return view
        except OSError:
            return None

    def router_weights(self, name: str) -> dict[str, int] | None:
        """Backend (`primary-<revision>`) -> weight in the table the router uses now."""
        view = self.router_view(name)
        if not view or not view.get("table"):
            return None
        return {v["name"]: int(v["weight"]) for v in view["table"]["variants"]}

    def router_requests(self, name: str) -> dict[tuple[str, str], float] | None:
        """`mdroute_requests_total` of the router process: (variant, code) -> count; None while there is no
        router process answering (the bridge restarts it when its backends move: counters start over)."""
        url = self.router_url(name)
        if url is None:
            return None
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=3) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        out: dict[tuple[str, str], float] = {}
        for line in text.splitlines():
            m = _SAMPLE.match(line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
                out[(labels.get("variant", ""), labels.get("code", ""))] = float(m["value"])
        return out

    def has_router(self, name: str) -> bool:
        return self.kubectl("get", "deployment", f"{name}-router", "-n", self.ns, check=False).returncode == 0
