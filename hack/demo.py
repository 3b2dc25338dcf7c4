"""`make demo`: the local cluster, the CRD, the operator and an example model, then a rollout story.

1. iris v1 (examples/sklearn-iris.yaml with a Canary rollout) becomes Ready and answers a prediction;
2. under load (with feedback), a bad v2 (two thirds of its answers are HTTP 500) is rolled out and rolls
   itself back when its error rate fails the analysis;
3. a good v3 is rolled out and promoted step by step (20%, 50%, then 100%).

Every step prints one timeline line: the operator's decisions (step, weight, analysis verdicts with value and
threshold) and each route table the router applies. The operator, the pod bridge (real model-server and
router processes behind the Deployments that kwok simulates) and Prometheus stop when the demo ends; the
cluster stays up (`make cluster-down`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

import yaml

from devcluster.cluster import ClusterError, LocalCluster
from devcluster.e2e_models import ModelArtifact, train
from devcluster.e2e_rollout import RolloutWatcher, canary_rollout
from devcluster.e2e_stack import Stack, StackOptions
from devcluster.e2e_traffic import TrafficLoop
from devcluster.paths import REPO_ROOT

NAMESPACE = "demo"
NAME = "iris"
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"\033[36m[{time.monotonic() - T0:6.1f}s]\033[0m {msg}", flush=True)


def manifest(model: ModelArtifact) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO_ROOT / "examples" / "sklearn-iris.yaml").read_text())
    doc["metadata"]["namespace"] = NAMESPACE
    doc["spec"]["model"].update({"uri": model.uri, "sha256": model.sha256, "version": model.version})
    doc["spec"]["rollout"] = canary_rollout(interval="5s", weights=(20, 50), hold="10s")
    return doc


def predict(url: str) -> dict[str, Any]:
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                   "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}).encode()
    req = urllib.request.Request(f"{url}/v2/models/iris/infer", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def _ready(url: str | None) -> bool:
    if not url:
        return False
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def first_part(stack: Stack, v1: ModelArtifact) -> None:
    say("kubectl apply: examples/sklearn-iris.yaml (model uri pointed at the trained file, Canary rollout)")
    stack.apply(manifest(v1))
    stack.kubectl("wait", "--for=condition=Ready", f"md/{NAME}", "-n", NAMESPACE, "--timeout=180s")
    say("ModelDeployment iris is Ready")
    print(stack.kubectl("get", "md,deploy,svc", "-n", NAMESPACE).stdout)
    stack.wait(lambda: _ready(stack.service_url(NAME)), 180, "the model server behind Service iris")
    url = stack.service_url(NAME)
    assert url is not None
    say(f"a prediction through the Service iris (bridged to {url})")
    print(json.dumps(predict(url)["outputs"], indent=1))


def rollout_story(stack: Stack, v2: ModelArtifact, v3: ModelArtifact) -> None:
    say("load: 20 predictions/s through Service iris, true labels sent back as feedback")
    load = stack.traffic(NAME, rate=20).start()
    watcher = RolloutWatcher(stack, NAME, on_line=say, since=time.time()).start()
    try:
        load.wait_answers(20, 120)
        watcher.poll()
        say(f"rolling out iris v2 ({v2.kind}: fails on long-petal rows) - kubectl apply")
        stack.apply(manifest(v2))
        stack.wait(lambda: stack.rollout(NAME).get("phase") == "RolledBack", 300, "v2 to be rolled back")
        time.sleep(2)
        _summary(stack, load, "after the rollback of v2")
        say(f"rolling out iris v3 ({v3.kind}) - kubectl apply")
        stack.apply(manifest(v3))
        stack.wait(lambda: stack.rollout(NAME).get("canaryRevision"), 120, "v3 to start")
        stack.wait(lambda: stack.rollout(NAME).get("phase") == "Stable", 300, "v3 to be promoted")
        time.sleep(2)
    finally:
        watcher.stop()
        load.stop()
    _summary(stack, load, "after the promotion of v3")
    from modeldeploy.cli.timeline import format_history, format_timeline

    md = stack.get(NAME)
    print("\n" + format_timeline(md) + "\n" + format_history(md))


def _summary(stack: Stack, load: TrafficLoop, when: str) -> None:
    counts = load.counts()
    by_variant: dict[str, dict[int, int]] = {}
    for (variant, code), n in counts.items():
        by_variant.setdefault(variant or "(no router)", {})[code] = n
    say(f"requests {when}: " + "; ".join(
        f"{v}: " + ", ".join(f"{n} x {c or 'no answer'}" for c, n in sorted(codes.items()))
        for v, codes in sorted(by_variant.items())) + f"; feedback scored {load.feedback.scored}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true",
                        help="keep the operator, the bridge and Prometheus running until Ctrl-C")
    parser.add_argument("--no-story", action="store_true", help="stop after the first prediction")
    args = parser.parse_args(argv)

    local = LocalCluster()
    workdir = local.paths.root / "demo"
    say("training the example models (scikit-learn iris): v1 good, v2 faulty, v3 good")
    v1, v2, v3 = train("good", "1", workdir), train("faulty", "2", workdir), train("good", "3", workdir, 2)
    say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok), "
        "the CRD, the pod bridge, Prometheus and the operator")
    stack = Stack(StackOptions(namespace=NAMESPACE, workdir=workdir / "stack", log=say))
    try:
        stack.start()
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(stack.kubectl("get", "nodes", "-o", "wide").stdout)
        say("removing the iris of an earlier demo run, if any")
        stack.kubectl("delete", "md", NAME, "-n", NAMESPACE, "--ignore-not-found", "--cascade=foreground",
                      "--timeout=120s")
        first_part(stack, v1)
        if args.no_story:
            pass
        elif not stack.rollout(NAME) or not stack.has_router(NAME):
            say("this operator build has no rollout engine or no router yet (no status.rollout or no "
                "Deployment iris-router): skipping the rollout story")
        else:
            rollout_story(stack, v2, v3)
        if args.keep:
            say("running; Ctrl-C to stop the operator, the bridge and Prometheus")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        stack.stop()
    say(f"done. The cluster is still up: `export KUBECONFIG={stack.kubeconfig}`; "
        "stop it: `make cluster-down`")
    return 0


if __name__ == "__main__":
    sys.exit(main())

