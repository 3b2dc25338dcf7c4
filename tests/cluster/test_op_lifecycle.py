"""The operator against the real local control plane: apply -> children -> Ready, update, scale, self-healing,
orphans, deletion, operator-detected problems, zero writes at steady state, restart-resume."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.reconciler import Reconciler
from tests.cluster.conftest import OperatorProcess, condition, get_json, wait_for, wait_routed
from tests.conftest import REPO_ROOT, Kubectl

pytestmark = pytest.mark.cluster
EXAMPLES = REPO_ROOT / "examples"
SELECTOR = "serving.modeldeploy.dev/modeldeployment={}"
MODEL_SERVERS = ",app.kubernetes.io/component!=router"
"""With the default traffic provider (router), `<md>-router` runs next to the model servers."""


def md_yaml(name: str, extra: str = "", uri: str = "https://store.example/m/model.joblib") -> str:
    return f"""
apiVersion: serving.modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}}}
spec:
  model: {{name: {name}, format: sklearn, uri: "{uri}"}}
{extra}"""


def md(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = get_json(kubectl, "md", name, "-n", ns)
    return result


def wait_phase(
    kubectl: Kubectl, ns: str, name: str, phase: str, op: OperatorProcess, timeout: float = 120
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = md(kubectl, ns, name)
        status = obj.get("status") or {}
        done = (
            status.get("phase") == phase and status.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if done else None

    try:
        result: dict[str, Any] = wait_for(f"{ns}/{name} phase {phase}", check, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\noperator log:\n{op.log_tail()}") from e
    return result


def children(
    kubectl: Kubectl, ns: str, name: str, model_only: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Workload children (by default without the router Deployment)."""
    out = {}
    selector = SELECTOR.format(name) + (MODEL_SERVERS if model_only else "")
    for kind in ("deployments", "services", "horizontalpodautoscalers"):
        out[kind] = get_json(kubectl, kind, "-n", ns, "-l", selector)["items"]
    return out


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    items = get_json(kubectl, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"]) for e in items]


def pass_writes(reconciler: Reconciler, ns: str, name: str) -> int:
    """Writes made by two more reconcile passes over a converged object (must be zero)."""
    return sum(reconciler.reconcile(ns, name).writes for _ in range(2))


def test_example_becomes_ready_with_owned_children_and_printer_columns(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, reconciler: Reconciler
) -> None:
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "sklearn-iris.yaml"), check=True)
    obj = wait_phase(kubectl, namespace, "iris", "Healthy", running_operator)
    status = obj["status"]
    assert status["ready"] == "2/2" and condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Ready")["observedGeneration"] == obj["metadata"]["generation"]
    rev = status["stableRevision"]
    kids = children(kubectl, namespace, "iris")
    assert names(kids["deployments"]) == [f"iris-primary-{rev}"]
    assert names(kids["services"]) == ["iris", f"iris-primary-{rev}"]
    for child in kids["deployments"] + kids["services"]:
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == obj["metadata"]["uid"] and owner["controller"] is True
    # Service iris moves to the router once a router pod is ready; the table sends everything to `rev`
    wait_routed(kubectl, namespace, "iris", {f"primary-{rev}": 1}, running_operator)
    router = get_json(kubectl, "deployment", "iris-router", "-n", namespace)
    assert router["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    # GitOps: no kopf annotations, no finalizer, spec untouched
    assert not obj["metadata"].get("finalizers")
    assert not [a for a in obj["metadata"].get("annotations", {}) if "kopf" in a]
    table = kubectl("get", "md", "iris", "-n", namespace, "--no-headers", check=True).stdout.split()
    assert table[:5] == ["iris", "iris", "1", "Healthy", "0"] and table[5] == "2/2"
    wide = kubectl("get", "md", "iris", "-n", namespace, "-o", "wide", check=True).stdout
    assert "REVISION" in wide and rev in wide
    evs = events(kubectl, namespace, "iris")
    assert ("Normal", "Created") in evs and ("Normal", "Ready") in evs
    assert pass_writes(reconciler, namespace, "iris") == 0


def test_variants_and_autoscaling(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, reconciler: Reconciler
) -> None:
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "ab-quantized.yaml"), check=True)
    obj = wait_phase(kubectl, namespace, "digits", "Healthy", running_operator)
    by_name = {v["name"]: v for v in obj["status"]["variants"]}
    assert set(by_name) == {"primary", "int8", "candidate"}
    assert (by_name["primary"]["weight"], by_name["int8"]["weight"]) == (90, 10)
    kids = children(kubectl, namespace, "digits")
    assert len(kids["deployments"]) == 3 and len(kids["services"]) == 4
    int8 = next(d for d in kids["deployments"] if "-int8-" in d["metadata"]["name"])
    env = {e["name"]: e.get("value") for e in int8["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MDSERVE_QUANTIZATION"] == "int8" and env["MDSERVE_VARIANT"] == "int8"

    extra = "  autoscaling: {minReplicas: 2, maxReplicas: 5, targetCPUUtilizationPercentage: 60}\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("scaled", extra), check=True)
    obj = wait_phase(kubectl, namespace, "scaled", "Healthy", running_operator)
    (hpa,) = children(kubectl, namespace, "scaled")["horizontalpodautoscalers"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"scaled-primary-{obj['status']['stableRevision']}"
    wait_for(
        "the HPA to scale the Deployment to minReplicas",
        lambda: md(kubectl, namespace, "scaled")["status"]["readyReplicas"] == 2,
        timeout=120,
    )
    assert pass_writes(reconciler, namespace, "scaled") == 0
    assert pass_writes(reconciler, namespace, "digits") == 0


def test_scale_update_and_rollout_to_a_new_revision(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess
) -> None:
    spec = "  serving: {replicas: 1}\n  rollout: {strategy: Rolling, scaleDownDelaySeconds: 3}\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("m", spec), check=True)
    first = wait_phase(kubectl, namespace, "m", "Healthy", running_operator)
    rev1 = first["status"]["stableRevision"]

    kubectl(
        "patch",
        "md",
        "m",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"serving":{"replicas":3}}}',
        check=True,
    )
    scaled = wait_phase(kubectl, namespace, "m", "Healthy", running_operator)
    assert scaled["status"]["stableRevision"] == rev1 and scaled["status"]["ready"] == "3/3"
    assert ("Normal", "Scaled") in events(kubectl, namespace, "m")

    kubectl(
        "patch",
        "md",
        "m",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"model":{"version":"2"}}}',
        check=True,
    )

    def promoted() -> bool:
        obj = md(kubectl, namespace, "m")
        return bool(obj["status"].get("stableRevision") != rev1 and obj["status"]["phase"] == "Healthy")

    wait_for("the new revision to become stable", promoted, timeout=120)
    obj = md(kubectl, namespace, "m")
    rev2 = obj["status"]["stableRevision"]
    assert "canaryRevision" not in obj["status"]
    history = [(h["revision"], h["outcome"], h["reason"]) for h in obj["status"]["rollout"]["history"]]
    assert history == [(rev2, "Promoted", "Ready"), (rev1, "Promoted", "first deployment")]
    wait_routed(kubectl, namespace, "m", {f"primary-{rev2}": 1}, running_operator)

    # Rolling keeps the previous revision as a rollback target: scaled to zero after scaleDownDelaySeconds,
    # its Deployment and Service kept.
    def replicas() -> dict[str, int]:
        deps = children(kubectl, namespace, "m")["deployments"]
        return {d["metadata"]["name"]: d["spec"]["replicas"] for d in deps}

    wait_for("the old revision to be scaled to zero and kept",
             lambda: replicas() == {f"m-primary-{rev1}": 0, f"m-primary-{rev2}": 3})
    assert names(children(kubectl, namespace, "m")["services"]) == sorted(
        ["m", f"m-primary-{rev1}", f"m-primary-{rev2}"]
    )
    assert ("Normal", "Promoted") in events(kubectl, namespace, "m")
    # the user's spec was never rewritten (Argo CD sees no drift)
    assert obj["spec"]["model"]["version"] == "2" and obj["spec"]["serving"]["replicas"] == 3


def test_drift_is_repaired_and_orphans_removed(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess
) -> None:
    extra = "  variants: [{name: beta, weight: 20, replicas: 1}]\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("d", extra), check=True)
    obj = wait_phase(kubectl, namespace, "d", "Healthy", running_operator)
    rev = obj["status"]["stableRevision"]
    dep = f"d-primary-{rev}"

    kubectl("delete", "service", "d", "-n", namespace, check=True)
    wait_for(
        "the stable Service to come back",
        lambda: kubectl("get", "service", "d", "-n", namespace).returncode == 0,
    )
    kubectl("scale", "deployment", dep, "-n", namespace, "--replicas=4", check=True)
    wait_for(
        "the hand scaling to be undone",
        lambda: get_json(kubectl, "deployment", dep, "-n", namespace)["spec"]["replicas"] == 1,
    )
    kubectl("set", "image", f"deployment/{dep}", "-n", namespace, "mdserve=evil:latest", check=True)
    wait_for(
        "the image to be restored",
        lambda: (
            get_json(kubectl, "deployment", dep, "-n", namespace)["spec"]["template"]["spec"]["containers"][
                0
            ]["image"]
            != "evil:latest"
        ),
    )

    renamed = "  variants: [{name: gamma, weight: 20, replicas: 1}]\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("d", renamed), check=True)

    def only_gamma() -> bool:
        deps = names(children(kubectl, namespace, "d")["deployments"])
        return len(deps) == 2 and any("-gamma-" in d for d in deps) and not any("-beta-" in d for d in deps)

    wait_for("the renamed variant's orphans to be removed", only_gamma)
    wait_phase(kubectl, namespace, "d", "Healthy", running_operator)
    services = names(children(kubectl, namespace, "d")["services"])
    assert not any("-beta-" in s for s in services) and len(services) == 3


def test_deletion_garbage_collects_children(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("gone"), check=True)
    wait_phase(kubectl, namespace, "gone", "Healthy", running_operator)
    kubectl("delete", "md", "gone", "-n", namespace, "--timeout=60s", check=True)
    wait_for(
        "children to be garbage-collected",
        lambda: not any(children(kubectl, namespace, "gone", model_only=False).values()),
        timeout=120,
    )


def test_operator_detected_problem_is_reported_and_isolated(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("good"), check=True)
    kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=md_yaml("bad", uri="s3://bucket/model.joblib"), check=True
    )
    wait_phase(kubectl, namespace, "good", "Healthy", running_operator)
    bad = wait_phase(kubectl, namespace, "bad", "Degraded", running_operator)
    ready = condition(bad, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "UnsupportedModelURI")
    assert "spec.model.uri" in ready["message"]
    assert not any(children(kubectl, namespace, "bad", model_only=False).values()), "no partial child set"
    assert ("Warning", "UnsupportedModelURI") in events(kubectl, namespace, "bad")
    # fixing the spec recovers
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("bad"), check=True)
    wait_phase(kubectl, namespace, "bad", "Healthy", running_operator)


def test_restart_resumes_without_duplicates(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, reconciler: Reconciler
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("r", "  serving: {replicas: 2}\n"), check=True)
    before = wait_phase(kubectl, namespace, "r", "Healthy", running_operator)
    running_operator.stop()
    # changes while the operator is down: a spec edit, and a child deleted by hand
    kubectl(
        "patch",
        "md",
        "r",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"serving":{"replicas":3}}}',
        check=True,
    )
    kubectl("delete", "service", "r", "-n", namespace, check=True)
    running_operator.start()
    after = wait_phase(kubectl, namespace, "r", "Healthy", running_operator)
    assert after["status"]["stableRevision"] == before["status"]["stableRevision"]
    assert after["status"]["ready"] == "3/3"
    kids = children(kubectl, namespace, "r")
    assert len(kids["deployments"]) == 1 and len(kids["services"]) == 2
    assert pass_writes(reconciler, namespace, "r") == 0
