"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler and kwok on loopback."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from devcluster import procs
from devcluster.kwok_readiness import (
    NAMESPACE_LABEL,
    READINESS_ANNOTATION,
    admission_policy,
    probe_pod,
    write_stages,
)
from devcluster.nodes import node_manifests
from devcluster.paths import ClusterPaths
from devcluster.pki import ensure_pki, write_kubeconfig

COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"]
POLICY_CHECK_NAMESPACE = "devcluster-policy-check"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"


class ClusterError(RuntimeError):
    """A problem the user can act on; printed without a stack trace."""


@dataclass
class Ports:
    """Loopback ports of one running cluster."""

    apiserver: int
    """kube-apiserver HTTPS."""
    etcd_client: int
    """etcd client URL."""
    etcd_peer: int
    """etcd peer URL (single member)."""
    controller_manager: int
    """controller-manager HTTPS (health)."""
    scheduler: int
    """scheduler HTTPS (health)."""
    kwok: int
    """kwok's own server (metrics, health)."""


def log(msg: str) -> None:
    print(f"\033[1m[cluster]\033[0m {msg}", file=sys.stderr, flush=True)


class LocalCluster:
    """Bring the control plane up once, reuse it while it is healthy, and tear it down without leftovers."""

    def __init__(self, paths: ClusterPaths | None = None, nodes: int = 2) -> None:
        self.paths = paths or ClusterPaths.default()
        self.nodes = nodes

    # ---- queries -------------------------------------------------------------------------------------
    def ports(self) -> Ports | None:
        try:
            return Ports(**json.loads(self.paths.state_file.read_text())["ports"])
        except (OSError, KeyError, TypeError, ValueError):
            return None

    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm/the operator: KUBECONFIG and the built binaries first on PATH."""
        return {
            "KUBECONFIG": str(self.paths.kubeconfig),
            "PATH": f"{self.paths.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def healthy(self) -> bool:
        ports = self.ports()
        if ports is None or not all(procs.running(c, self.paths.pids) for c in COMPONENTS):
            return False
        return self._get("/readyz", ports.apiserver) == 200

    def _get(self, path: str, port: int) -> int:
        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.paths.pki / "admin.crt"), str(self.paths.pki / "admin.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=3)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except OSError:
            return 0
        finally:
            conn.close()

    # ---- lifecycle -----------------------------------------------------------------------------------
    def up(self) -> None:
        if self.healthy():
            log("already running and healthy")
            return
        self._check_binaries()
        if any(procs.running(c, self.paths.pids) for c in COMPONENTS) or self.paths.state_file.exists():
            log("found a half-started cluster from an earlier run: cleaning it up")
            self.down(quiet=True)
        started = time.monotonic()
        ensure_pki(self.paths.pki)
        ports = self._allocate_ports()
        self.paths.state_file.write_text(json.dumps({"ports": asdict(ports)}, indent=2))
        server = f"https://127.0.0.1:{ports.apiserver}"
        for client in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
            target = self.paths.kubeconfig if client == "admin" else self.paths.component_kubeconfig(client)
            write_kubeconfig(target, server, self.paths.pki, client)
        try:
            self._start_etcd(ports)
            self._start_apiserver(ports)
            self._wait("kube-apiserver ready", lambda: self._get("/readyz", ports.apiserver) == 200, 120)
            self._start_controller_manager(ports)
            self._start_scheduler(ports)
            self._start_kwok(ports)
            self._create_nodes()
            self._wait("nodes Ready", self._nodes_ready, 90)
            self._wait("default ServiceAccount", self._default_sa_exists, 60)
            self._create_readiness_policy()
        except ClusterError:
            self._dump_logs()
            self.down(quiet=True)
            raise
        log(f"up in {time.monotonic() - started:.1f}s: {server}")

    def down(self, quiet: bool = False) -> None:
        stopped = procs.stop_all(self.paths.pids, list(reversed(COMPONENTS)))
        for sub in (self.paths.etcd_data, self.paths.pids):
            shutil.rmtree(sub, ignore_errors=True)
        for f in [self.paths.state_file, self.paths.kubeconfig, *self.paths.root.glob("*.kubeconfig")]:
            f.unlink(missing_ok=True)
        if not quiet:
            log(f"stopped {', '.join(stopped) if stopped else 'nothing (was not running)'}")

    # ---- steps ---------------------------------------------------------------------------------------
    def _check_binaries(self) -> None:
        missing = [b for b in BINARIES if not self.paths.binary(b).exists()]
        if missing:
            raise ClusterError(
                f"missing binaries {', '.join(missing)} in {self.paths.bin}: run `make binaries` "
                "(or hack/build-binaries.sh) first"
            )
        if shutil.which("openssl") is None:
            raise ClusterError("openssl is not installed: apt-get install -y openssl")

    def _allocate_ports(self) -> Ports:
        wanted = os.environ.get("MODELDEPLOY_APISERVER_PORT")
        if wanted:
            if procs.port_in_use(int(wanted)):
                raise ClusterError(
                    f"port {wanted} (MODELDEPLOY_APISERVER_PORT) is already in use on 127.0.0.1: "
                    "free it or unset the variable to pick a free port"
                )
            apiserver = int(wanted)
        else:
            apiserver = procs.free_port()
        return Ports(apiserver, procs.free_port(), procs.free_port(), procs.free_port(),
                     procs.free_port(), procs.free_port())

    def _start(self, name: str, args: list[str]) -> None:
        procs.start(name, [str(self.paths.binary(name)), *args], self.paths.pids, self.paths.logs)
        time.sleep(0.3)
        if not procs.running(name, self.paths.pids):
            raise ClusterError(f"{name} exited at start-up")

    def _start_etcd(self, p: Ports) -> None:
        client, peer = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
        self._start("etcd", [
            "--name=local", f"--data-dir={self.paths.etcd_data}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}", "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296", "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=5m", "--log-level=warn",
        ])

    def _start_apiserver(self, p: Ports) -> None:
        pki = self.paths.pki
        self._start("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
            "--bind-address=127.0.0.1", f"--secure-port={p.apiserver}", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true", "--profiling=false", "--v=1",
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,"
            "ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            # The bridge readiness policy (kwok_readiness.py) is a MutatingAdmissionPolicy: beta in 1.34.
            "--feature-gates=MutatingAdmissionPolicy=true",
            "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
        ])

    def _start_controller_manager(self, p: Ports) -> None:
        kc, pki = self.paths.component_kubeconfig("kube-controller-manager"), self.paths.pki
        self._start("kube-controller-manager", [
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={p.controller_manager}", "--leader-elect=false",
            "--use-service-account-credentials=true", f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*", "--horizontal-pod-autoscaler-sync-period=5s", "--v=1",
        ])

    def _start_scheduler(self, p: Ports) -> None:
        kc = self.paths.component_kubeconfig("kube-scheduler")
        self._start("kube-scheduler", [
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={p.scheduler}", "--leader-elect=false", "--v=1",
        ])

    def _start_kwok(self, p: Ports) -> None:
        try:
            stages = write_stages(self.paths.kwok_stages, self.paths.root / "kwok")
        except FileNotFoundError as exc:
            raise ClusterError(f"kwok stage config missing ({exc.filename}): run `make binaries`") from None
        configs = [f"--config={s}" for s in stages]
        self._start("kwok", [
            f"--kubeconfig={self.paths.component_kubeconfig('kwok')}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
            f"--cidr={POD_CIDR}", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{p.kwok}", *configs,
        ])

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.paths.binary("kubectl")), *args], input=stdin, capture_output=True, text=True,
            env={**os.environ, **self.env()}, timeout=60,
        )

    def _create_nodes(self) -> None:
        result = self.kubectl("apply", "-f", "-", stdin=node_manifests(self.nodes))
        if result.returncode != 0:
            raise ClusterError(f"creating kwok nodes failed: {result.stderr.strip()}")

    def _create_readiness_policy(self) -> None:
        """The policy that hands readiness of bridged pods to the pod bridge; waits until it acts (policies
        load asynchronously: a pod created just after the apply could miss it)."""
        result = self.kubectl("apply", "-f", "-", stdin=json.dumps({"kind": "List", "apiVersion": "v1",
                                                                   "items": admission_policy()}))
        if result.returncode != 0:
            raise ClusterError(f"creating the bridge readiness policy failed: {result.stderr.strip()}")
        ns = POLICY_CHECK_NAMESPACE
        self.kubectl("create", "namespace", ns)
        self.kubectl("label", "namespace", ns, f"{NAMESPACE_LABEL}=true", "--overwrite")

        def annotates() -> bool:
            out = self.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                               stdin=json.dumps(probe_pod(ns)))
            if out.returncode != 0:
                return False
            annotations = json.loads(out.stdout)["metadata"].get("annotations") or {}
            return READINESS_ANNOTATION in annotations

        # Also waits for the namespace's default ServiceAccount, without which no pod is admitted.
        self._wait("the bridge readiness policy", annotates, 60)
        self.kubectl("delete", "namespace", ns, "--wait=false")

    def _nodes_ready(self) -> bool:
        result = self.kubectl(
            "get", "nodes", "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}",
        )
        return result.returncode == 0 and result.stdout.split().count("True") >= self.nodes

    def _default_sa_exists(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default").returncode == 0

    def _wait(self, what: str, check: object, timeout: float) -> None:
        assert callable(check)
        log(f"waiting for {what} ...")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [c for c in COMPONENTS if (self.paths.pids / f"{c}.pid").exists()
                    and not procs.running(c, self.paths.pids)]
            if dead:
                raise ClusterError(f"{', '.join(dead)} exited; see {self.paths.logs}/{dead[0]}.log")
            if check():
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.paths.logs}")

    def _dump_logs(self) -> None:
        for c in COMPONENTS:
            f = self.paths.logs / f"{c}.log"
            if f.exists():
                tail = f.read_text(errors="replace").splitlines()[-15:]
                print(f"--- last lines of {f} ---\n" + "\n".join(tail), file=sys.stderr)
