"""The pod bridge: real local processes behind the Deployments whose pods kwok only simulates.

For every Deployment labelled `app.kubernetes.io/managed-by=modeldeploy` that wants replicas, one process
runs from its pod template on a loopback port; Services selecting it are published in a JSON map file and
Prometheus finds the processes through a file_sd file. Generic over Deployments: no operator imports.

Like a kubelet, the bridge owns the readiness of the pods it stands in for: it probes each process's
readinessProbe path and patches its pods Ready/NotReady (bridge_ready.py, bridge_pods.py). It labels the
namespaces it bridges so that the local cluster's admission policy hands their modeldeploy pods to it
(kwok_readiness.py); pods elsewhere, or on a cluster without that policy, keep kwok's Ready-at-once.

    with PodBridge(BridgeOptions(namespaces=["demo"], state_dir=tmp)) as bridge:
        bridge.wait_running("demo", "iris-stable-1a2b3c4d")
        url = bridge.local_url("iris", "demo")

CLI: `python -m devcluster.bridge --namespace NS [--namespace NS2 | --all-namespaces] [--state-dir DIR]`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devcluster.bridge_proc import ManagedProcess, ProcessStatus
from devcluster.bridge_publish import (
    ServiceRoute,
    file_sd_document,
    map_document,
    router_overrides,
    service_routes,
    write_json_atomic,
)
from devcluster.bridge_readiness import PodReadiness
from devcluster.bridge_ready import PROBE_PERIOD
from devcluster.bridge_spec import Key, Obj, ProcessSpec, SpecError, build_spec, wants_process
from devcluster.bridge_watch import Informer
from devcluster.kwok_readiness import MANAGED_LABEL
from devcluster.paths import REPO_ROOT, ClusterPaths
from devcluster.procs import free_port, port_in_use
from devcluster.prometheus import ScrapeTarget

log = logging.getLogger("devcluster.bridge")
MANAGED = "app.kubernetes.io/managed-by=modeldeploy"


@dataclass
class BridgeOptions:
    """What the bridge watches and where it writes."""

    state_dir: Path
    """Directory of `services.json` (the Service map) and `file_sd.json` (Prometheus targets)."""
    namespaces: list[str] | None = None
    """Namespaces to watch; None watches all."""
    log_dir: Path | None = None
    """Process logs, `<namespace>_<deployment>.log`; default `<state_dir>/logs`."""
    kubeconfig: Path | None = None
    """Kubeconfig of the cluster; default $KUBECONFIG, else the local cluster's. Also given to routers."""
    selector: str = MANAGED
    """Label selector of the Deployments to bridge."""
    cwd: Path = REPO_ROOT
    """Working directory of the processes."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Env added to every process under the container's own (e.g. MDSERVE_TRUST_PICKLE for a demo)."""
    backoff: tuple[float, float] = (1.0, 30.0)
    """Initial and largest delay before restarting a crashed process."""
    max_grace: float = 10.0
    """Upper bound on terminationGracePeriodSeconds before SIGKILL (keeps tests quick)."""
    probe_period: float = PROBE_PERIOD
    """Seconds between readiness probes of a process (the probe's periodSeconds is compressed to this)."""

    @property
    def map_file(self) -> Path:
        return self.state_dir / "services.json"

    @property
    def file_sd(self) -> Path:
        return self.state_dir / "file_sd.json"


class PodBridge:
    """Start with `with PodBridge(options) as bridge:` or `start()`/`stop()`; thread-safe queries."""

    def __init__(self, options: BridgeOptions, api_client: Any = None) -> None:
        self.options = options
        self.log_dir = options.log_dir or options.state_dir / "logs"
        self.kubeconfig = options.kubeconfig or _default_kubeconfig()
        self._api = api_client
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._procs: dict[Key, ManagedProcess] = {}
        self._ports: dict[Key, int] = {}
        self._errors: dict[Key, ProcessStatus] = {}
        self._status: dict[Key, ProcessStatus] = {}
        self._routes: list[ServiceRoute] = []
        self._deployments: list[Informer] = []
        self._services: list[Informer] = []
        self._pods: list[Informer] = []
        self._replicasets: list[Informer] = []
        self._namespaces: list[Informer] = []
        self._readiness: PodReadiness | None = None
        self._thread = threading.Thread(target=self._loop, name="pod-bridge", daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> PodBridge:
        from kubernetes import client, config

        api = self._api or config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig))
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        wake = self._wake.set
        self._readiness = PodReadiness(core, self.options.namespaces, self.options.probe_period, wake)
        scopes: list[str | None] = [*self.options.namespaces] if self.options.namespaces else [None]
        # Only pods with this label can carry the readiness annotation (the admission policy's selector).
        managed: dict[str, Any] = {"label_selector": "=".join(MANAGED_LABEL)}
        for ns in scopes:
            dep_kw: dict[str, Any] = {"label_selector": self.options.selector}
            if ns is None:
                self._deployments.append(Informer("deployments", apps.list_deployment_for_all_namespaces,
                                                  dep_kw, wake))
                self._services.append(Informer("services", core.list_service_for_all_namespaces, {}, wake))
                self._pods.append(Informer("pods", core.list_pod_for_all_namespaces, managed, wake))
                self._replicasets.append(Informer("replicasets", apps.list_replica_set_for_all_namespaces,
                                                  managed, wake))
                self._namespaces.append(Informer("namespaces", core.list_namespace, {}, wake))
            else:
                self._deployments.append(Informer(f"deployments in {ns}", apps.list_namespaced_deployment,
                                                  {"namespace": ns, **dep_kw}, wake))
                self._services.append(Informer(f"services in {ns}", core.list_namespaced_service,
                                               {"namespace": ns}, wake))
                self._pods.append(Informer(f"pods in {ns}", core.list_namespaced_pod,
                                           {"namespace": ns, **managed}, wake))
                self._replicasets.append(Informer(f"replicasets in {ns}", apps.list_namespaced_replica_set,
                                                  {"namespace": ns, **managed}, wake))
        informers = self._informers()
        # Before any Deployment of the caller's exists: its pods must be created in a labelled namespace.
        self._readiness.label_namespaces([])
        for inf in informers:
            inf.start()
        self._thread.start()
        # An interpreter exit without stop() (a test run interrupted, an uncaught error) must not leave
        # processes behind: they run in their own sessions and would survive us.
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        for inf in informers:
            if not inf.synced.wait(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise TimeoutError(f"pod bridge: could not list {inf.what} within {timeout:.0f}s")
        return self

    def stop(self) -> None:
        """Stop watching, stop every process (SIGTERM, SIGKILL after the grace), empty the published files."""
        if self._stopping.is_set():
            return
        atexit.unregister(self.stop)
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        for inf in self._informers():
            inf.stop()
        if self._readiness is not None:
            self._readiness.stop()
        procs = list(self._procs.values())
        for p in procs:
            p.signal_stop()
        for p in procs:
            p.wait_stopped()
        self._procs.clear()
        with self._lock:
            self._status, self._routes = {}, []
        write_json_atomic(self.options.map_file, {})
        write_json_atomic(self.options.file_sd, [])

    def _informers(self) -> list[Informer]:
        return [*self._deployments, *self._services, *self._pods, *self._replicasets, *self._namespaces]

    def __enter__(self) -> PodBridge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- queries -------------------------------------------------------------------------------------
    def status(self) -> dict[Key, ProcessStatus]:
        """Every bridged Deployment's process (running, backoff, error), keyed by (namespace, name)."""
        with self._lock:
            return {**self._status}

    def process(self, namespace: str, name: str) -> ProcessStatus | None:
        return self.status().get((namespace, name))

    def service_map(self) -> dict[str, list[str]]:
        """The content of the map file."""
        with self._lock:
            return map_document(self._routes)

    def local_url(self, service: str, namespace: str, port: int | None = None) -> str | None:
        """`http://127.0.0.1:<p>` behind a Service (its first port unless `port`), or None if nothing is."""
        with self._lock:
            for r in self._routes:
                if r.service == service and r.namespace == namespace and port in (None, r.port):
                    return f"http://{r.addresses[0]}"
        return None

    def scrape_target(self, job: str = "modeldeploy") -> ScrapeTarget:
        """A Prometheus job that follows the bridged processes through the file_sd file."""
        return ScrapeTarget(job, [], file_sd=self.options.file_sd, honor_labels=True)

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `check` until it returns something truthy (generous timeouts: the box may be loaded)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod bridge: timed out after {timeout:.0f}s waiting for {what}; "
                                   f"processes: {self.status()}")
            time.sleep(0.1)

    def wait_running(self, namespace: str, name: str, timeout: float = 60,
                     not_pid: int | None = None) -> ProcessStatus:
        """Until the Deployment's process runs (with a pid other than `not_pid`, to wait for a restart)."""

        def check() -> ProcessStatus | None:
            s = self.process(namespace, name)
            return s if s and s.state == "running" and s.pid != not_pid else None

        result: ProcessStatus = self.wait_for(check, timeout, f"{namespace}/{name} running")
        return result

    def wait_ready(self, namespace: str, name: str, timeout: float = 120) -> ProcessStatus:
        """Until the bridge finds the process ready (its readiness probe passes): its pods are then Ready."""

        def check() -> ProcessStatus | None:
            s = self.process(namespace, name)
            return s if s is not None and s.state == "running" and s.ready else None

        result: ProcessStatus = self.wait_for(check, timeout, f"{namespace}/{name} ready")
        return result

    def wait_gone(self, namespace: str, name: str, timeout: float = 60) -> None:
        """Until the Deployment no longer has a process."""
        self.wait_for(lambda: self.process(namespace, name) is None, timeout, f"{namespace}/{name} stopped")

    # ---- the reconcile loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            # Woken by watch events; the timeout also notices crashed processes within half a second.
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._reconcile()
            except Exception:
                log.exception("pod bridge: reconcile failed; retrying")

    def _desired(self, deployments: list[Obj]) -> dict[Key, ProcessSpec]:
        desired: dict[Key, ProcessSpec] = {}
        errors: dict[Key, ProcessStatus] = {}
        for dep in deployments:
            if not wants_process(dep):
                continue
            key = (dep["metadata"]["namespace"], dep["metadata"]["name"])
            try:
                spec = build_spec(dep)
            except SpecError as exc:
                if key not in self._errors:
                    log.error("%s/%s: cannot run locally: %s", *key, exc)
                errors[key] = ProcessStatus(*key, state="error", pid=None, port=None, restarts=0,
                                            last_exit_code=None, template_hash="", log_path=None,
                                            message=str(exc))
                continue
            desired[key] = spec
        self._errors = errors
        return desired

    def _reconcile(self) -> None:
        readiness = self._readiness
        assert readiness is not None
        readiness.label_namespaces([o for inf in self._namespaces for o in inf.snapshot()])
        # One snapshot for the processes and the pods: a process and the ReplicaSet whose pods it makes
        # Ready come from the same Deployment generation.
        deployments = [o for inf in self._deployments for o in inf.snapshot()]
        desired = self._desired(deployments)
        for key in desired:
            if key not in self._ports:
                self._ports[key] = free_port()
        for key in [k for k in self._ports if k not in desired]:
            del self._ports[key]
        services = [o for inf in self._services for o in inf.snapshot()]
        routes = service_routes(services, {k: (s, self._ports[k]) for k, s in desired.items()})
        desired = {k: self._with_bridge_env(s, routes) for k, s in desired.items()}

        gone = [k for k in self._procs if k not in desired]
        changed = [k for k, s in desired.items() if k in self._procs
                   and self._procs[k].spec.template_hash != s.template_hash]
        for key in [*gone, *changed]:
            self._procs[key].signal_stop()
        for key in [*gone, *changed]:
            if key in changed:
                log.info("%s/%s: pod template changed: restarting", *key)
            self._procs.pop(key).wait_stopped()
        now = time.monotonic()
        for key, spec in desired.items():
            proc = self._procs.get(key)
            if proc is None:
                self._procs[key] = proc = self._new_process(key, spec)
                proc.start()
            else:
                proc.tick(now)
        statuses = readiness.track(self._procs)
        with self._lock:
            self._routes = routes
            self._status = {**self._errors, **statuses}
        write_json_atomic(self.options.map_file, map_document(routes))
        write_json_atomic(self.options.file_sd,
                          file_sd_document({k: (p.spec, p.port) for k, p in self._procs.items()}))
        readiness.sync_pods(deployments, [o for inf in self._pods for o in inf.snapshot()],
                            [o for inf in self._replicasets for o in inf.snapshot()], statuses)

    def _new_process(self, key: Key, spec: ProcessSpec) -> ManagedProcess:
        for line in spec.skipped:
            log.info("%s/%s: %s", *key, line)
        port = self._ports[key]
        if port_in_use(port):  # the old process is gone, but something else took the port meanwhile
            port = self._ports[key] = free_port()
        return ManagedProcess(spec, port, self.log_dir / f"{key[0]}_{key[1]}.log", self.options.cwd,
                              dict(os.environ), self.options.backoff, self.options.max_grace)

    def _with_bridge_env(self, spec: ProcessSpec, routes: list[ServiceRoute]) -> ProcessSpec:
        extra = {k: v for k, v in self.options.extra_env.items() if k not in spec.env}
        if spec.is_router:
            extra |= {"KUBECONFIG": str(self.kubeconfig),
                      "MDROUTE_NAMESPACE": spec.env.get("MDROUTE_NAMESPACE", spec.namespace)}
            if Path(spec.argv[0]).name == "mdroute":
                # The Go router re-reads the Service map as it changes: no restart when a canary appears
                # (a restarted router answers 503 until its table loads).
                extra["MDROUTE_BACKEND_MAP"] = str(self.options.map_file)
            else:
                # The Python router takes --backend-override only, fixed at start-up: it is restarted when
                # the Services behind its backends move (the overrides are part of the hash).
                own = spec.env.get("MDROUTE_BACKEND_OVERRIDES", "")
                overrides = ",".join(x for x in (own, router_overrides(routes, spec.namespace)) if x)
                extra["MDROUTE_BACKEND_OVERRIDES"] = overrides
        return spec.with_env(extra)


def _default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(env) if env else ClusterPaths.default().kubeconfig


if __name__ == "__main__":
    from devcluster.bridge_cli import main

    sys.exit(main())
