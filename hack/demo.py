"""`make demo`: the local cluster, the CRD, the operator and an example model, shown working end to end.

Every step prints one timeline line. The operator and the pod bridge (real model-server processes behind
the Deployments that kwok simulates) stop when the demo ends; the cluster stays up (`make cluster-down`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devcluster.bridge import BridgeOptions, PodBridge
from devcluster.cluster import ClusterError, LocalCluster
from devcluster.operator_process import OperatorProcess
from devcluster.paths import REPO_ROOT

NAMESPACE = "demo"
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"\033[36m[{time.monotonic() - T0:6.1f}s]\033[0m {msg}", flush=True)


class Kubectl:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=self.env)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


def train_iris(workdir: Path) -> tuple[Path, str]:
    """A real scikit-learn model (iris ships inside scikit-learn: nothing is downloaded)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    path = workdir / "iris-v1" / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def example_manifest(model_path: Path, sha256: str) -> str:
    doc: dict[str, Any] = yaml.safe_load((REPO_ROOT / "examples" / "sklearn-iris.yaml").read_text())
    doc["metadata"]["namespace"] = NAMESPACE
    doc["spec"]["model"].update({"uri": f"file://{model_path}", "sha256": sha256})
    return yaml.safe_dump(doc, sort_keys=False)


def predict(url: str) -> dict[str, Any]:
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                   "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}).encode()
    req = urllib.request.Request(f"{url}/v2/models/iris/infer", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true",
                        help="keep the operator and the bridge running until Ctrl-C")
    args = parser.parse_args(argv)

    existing = os.environ.get("MODELDEPLOY_CLUSTER") == "existing"
    local = LocalCluster()
    if existing:
        env = dict(os.environ)
        kubeconfig = Path(env.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        say(f"using the existing cluster in {kubeconfig}")
    else:
        say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        try:
            local.up()
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        env = {**os.environ, **local.env()}
        kubeconfig = local.paths.kubeconfig
    kubectl = Kubectl(env)
    print(kubectl("get", "nodes", "-o", "wide"))

    say("installing the ModelDeployment CRD")
    kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/modeldeployments.serving.modeldeploy.dev")
    kubectl("create", "namespace", NAMESPACE, check=False)

    workdir = local.paths.root / "demo"
    say("training the example model (scikit-learn iris, LogisticRegression)")
    model_path, sha256 = train_iris(workdir)

    logs = local.paths.logs
    say(f"starting the operator (logs: {logs / 'operator.log'})")
    with OperatorProcess(kubeconfig, logs / "operator.log", namespaces=[NAMESPACE]) as _operator, \
            PodBridge(BridgeOptions(namespaces=[NAMESPACE], state_dir=workdir / "bridge",
                                    kubeconfig=kubeconfig)) as bridge:
        say("kubectl apply -f examples/sklearn-iris.yaml (model uri pointed at the trained file)")
        print(kubectl("apply", "-f", "-", stdin=example_manifest(model_path, sha256)))
        kubectl("wait", "--for=condition=Ready", "md/iris", "-n", NAMESPACE, "--timeout=180s")
        say("ModelDeployment iris is Ready")
        print(kubectl("get", "md,deploy,svc,hpa", "-n", NAMESPACE))

        url = wait_for(lambda: bridge.local_url("iris", NAMESPACE), 120, "the iris Service to have a process")
        say(f"a prediction through the stable Service iris (bridged to {url})")
        wait_for(lambda: _ready(url), 180, "the model server to load the model")
        print(json.dumps(predict(url)["outputs"], indent=1))

        if args.keep:
            say("running; Ctrl-C to stop the operator and the bridge")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    say(f"done. The cluster is still up: `export KUBECONFIG={kubeconfig}`; stop it: `make cluster-down`")
    return 0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
