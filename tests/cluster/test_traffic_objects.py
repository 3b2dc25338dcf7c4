"""The traffic renderers against a real apiserver: every rendered object is accepted by server-side apply
(HTTPRoute validation of the official Gateway API CRDs, RBAC), the router's ServiceAccount can read exactly
its ConfigMap, the real router process loads the applied table through that account and follows a change,
and the CEL rules of the spec.traffic fragment compile and refuse bad input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.crds import wait_crd_established
from modeldeploy.api.schema import spec_schema
from modeldeploy.traffic import schema as traffic_schema
from modeldeploy.traffic.httproute import build_httproute
from modeldeploy.traffic.plan import Backend, TrafficPlan
from modeldeploy.traffic.providers import desired_traffic_objects, stale_selectors
from modeldeploy.traffic.spec import GatewaySpec, ParentRef
from tests.cluster.conftest import free_port, wait_for
from tests.conftest import REPO_ROOT, ClusterHandle, Kubectl
from tests.unit.traffic.scenario import GATEWAY, IMAGE, md, shares, traffic, variants

pytestmark = pytest.mark.cluster
PROBE_GROUP = "probe.traffic.modeldeploy.dev"


def owner_uid(kubectl: Kubectl, namespace: str) -> str:
    """A ConfigMap standing in for the ModelDeployment as owner: an ownerReference to a missing
    ModelDeployment would have the garbage collector delete the objects mid-test."""
    got = kubectl("get", "configmap", "owner", "-n", namespace, "-o", "json")
    if got.returncode != 0:
        kubectl("create", "configmap", "owner", "-n", namespace, check=True)
        got = kubectl("get", "configmap", "owner", "-n", namespace, "-o", "json", check=True)
    return str(json.loads(got.stdout)["metadata"]["uid"])


def owned(kubectl: Kubectl, namespace: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    uid = owner_uid(kubectl, namespace)
    out = copy.deepcopy(objects)
    for o in out:
        o["metadata"]["ownerReferences"][0].update(apiVersion="v1", kind="ConfigMap", name="owner", uid=uid)
    return out


def apply(kubectl: Kubectl, objects: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    return kubectl("apply", "--server-side", "--field-manager=modeldeploy", *extra, "-f", "-", stdin=doc)


def rendered(namespace: str, t: Any, canary: int = 20) -> Any:
    m = md()
    m["metadata"]["namespace"] = namespace
    vs = variants()
    return desired_traffic_objects(m, vs, shares(vs, canary), t, image=IMAGE, router_ready=True,
                                   gateway_api_available=True)


def test_router_objects_apply_and_rbac_is_one_configmap(kubectl: Kubectl, namespace: str) -> None:
    r = rendered(namespace, traffic())
    assert r.problem is None
    result = apply(kubectl, owned(kubectl, namespace, r.objects))
    assert result.returncode == 0, result.stderr
    sa = f"system:serviceaccount:{namespace}:fraud-router"
    for verb in ("get", "list", "watch"):
        can = kubectl("auth", "can-i", verb, "configmaps/fraud-routes", "--as", sa, "-n", namespace)
        assert can.stdout.strip() == "yes", (verb, can.stdout, can.stderr)
    for denied in (("get", "configmaps/owner"), ("update", "configmaps/fraud-routes"), ("get", "secrets")):
        assert kubectl("auth", "can-i", *denied, "--as", sa, "-n", namespace).stdout.strip() == "no", denied
    # The selectors a provider switch deletes by find exactly the router's own objects.
    for kind, selector in stale_selectors("fraud", "router", "none"):
        names = kubectl("get", kind, "-n", namespace, "-l", selector, "-o", "name", check=True).stdout.split()
        assert len(names) == 1, (kind, names)
    svc = json.loads(kubectl("get", "service", "fraud", "-n", namespace, "-o", "json", check=True).stdout)
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "router"


def _router_kubeconfig(cluster: ClusterHandle, kubectl: Kubectl, namespace: str, path: Path) -> Path:
    token = kubectl("create", "token", "fraud-router", "-n", namespace, check=True).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    c = admin["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [c], "current-context": "router",
        "contexts": [{"name": "router", "context": {"cluster": c["name"], "user": "router"}}],
        "users": [{"name": "router", "user": {"token": token}}],
    }))
    return path


@pytest.fixture
def router_process(cluster: ClusterHandle, kubectl: Kubectl, namespace: str, tmp_path: Path
                   ) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log = tmp_path / "router.log"
    r = rendered(namespace, traffic())
    result = apply(kubectl, owned(kubectl, namespace, r.objects))
    assert result.returncode == 0, result.stderr
    kubeconfig = _router_kubeconfig(cluster, kubectl, namespace, tmp_path / "router.kubeconfig")
    env = {k: v for k, v in cluster.env.items() if not k.startswith("MDROUTE_")}
    env["KUBECONFIG"] = str(kubeconfig)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mdserve", "router", "--configmap", "fraud-routes",
             "--namespace", namespace, "--port", str(port), "--host", "127.0.0.1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        try:
            yield port, log
        finally:
            proc.terminate()
            proc.wait(20)


def _routes(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/routes", timeout=2) as resp:
        return dict(json.loads(resp.read()))


def _version_in_use(port: int) -> str:
    try:
        doc = _routes(port)
    except OSError:  # not listening yet
        return ""
    table = doc.get("table") or {}
    return str(table.get("version", ""))


def test_router_loads_the_applied_table_with_its_own_account(
    router_process: tuple[int, Path], kubectl: Kubectl, namespace: str
) -> None:
    port, log = router_process
    first = rendered(namespace, traffic())
    assert first.table is not None
    try:
        wait_for("the router to load the table", lambda: _version_in_use(port) == first.table.version, 60)
    except AssertionError:
        raise AssertionError(f"router log:\n{log.read_text(errors='replace')[-3000:]}") from None
    doc = _routes(port)
    assert not doc.get("last_error"), doc
    moved = rendered(namespace, traffic(), canary=50)
    assert moved.table is not None and moved.table.version != first.table.version
    cm = next(o for o in owned(kubectl, namespace, moved.objects) if o["kind"] == "ConfigMap")
    start = time.monotonic()
    assert apply(kubectl, [cm]).returncode == 0
    new = moved.table.version
    wait_for("the router to follow the change", lambda: _version_in_use(port) == new, 10, 0.05)
    # Generous on a busy 2-core machine; docs/router.md measures ~30 ms.
    assert time.monotonic() - start < 5


def test_httproute_is_accepted_as_rendered(kubectl: Kubectl, namespace: str, gateway_crds: Path) -> None:
    r = rendered(namespace, traffic(GATEWAY))
    assert r.problem is None
    result = apply(kubectl, owned(kubectl, namespace, r.objects))
    assert result.returncode == 0, result.stderr
    live = json.loads(kubectl("get", "httproute", "fraud", "-n", namespace, "-o", "json", check=True).stdout)
    assert [rule["name"] for rule in live["spec"]["rules"]] == ["rule-beta", "match-candidate", "split"]
    assert [ref["weight"] for ref in live["spec"]["rules"][-1]["backendRefs"]] == [36, 9, 5, 0]
    mirror = live["spec"]["rules"][-1]["filters"][0]["requestMirror"]
    assert mirror["fraction"] == {"numerator": 1250, "denominator": 10000}


def test_httproute_limit_matches_the_api(kubectl: Kubectl, namespace: str, gateway_crds: Path) -> None:
    """validate.GATEWAY_MAX_BACKENDS is the API's: 16 backendRefs are accepted, 17 refused."""
    def route(n: int) -> dict[str, Any]:
        backends = tuple(Backend(f"v{i}-0000000{i % 10}", f"v{i}", "00000000", f"svc-{i}", 80, 1, 1.0)
                         for i in range(n))
        m = md()
        m["metadata"]["namespace"] = namespace
        gateway = GatewaySpec(parentRefs=(ParentRef(name="gw"),))
        obj = build_httproute(m, TrafficPlan(backends, (), ()), gateway)
        obj["metadata"].pop("ownerReferences")
        return obj

    assert apply(kubectl, [route(16)], "--dry-run=server").returncode == 0
    refused = apply(kubectl, [route(17)], "--dry-run=server")
    assert refused.returncode != 0 and "backendRefs" in refused.stderr


@pytest.fixture(scope="session")
def probe_crd(kubectl: Kubectl, cluster: ClusterHandle) -> Iterator[str]:
    """A throwaway CRD whose spec is `variants` (the real schema's) + the `traffic` fragment + its rules."""
    spec = spec_schema()
    node = {
        "type": "object",
        "description": "Probe of the traffic fragment.",
        "properties": {
            "variants": spec["properties"]["variants"],
            "traffic": traffic_schema.TRAFFIC_SPEC_SCHEMA,
        },
        "x-kubernetes-validations": list(traffic_schema.TRAFFIC_SPEC_RULES),
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"trafficprobes.{PROBE_GROUP}"},
        "spec": {"group": PROBE_GROUP, "scope": "Namespaced",
                 "names": {"kind": "TrafficProbe", "plural": "trafficprobes", "singular": "trafficprobe",
                           "listKind": "TrafficProbeList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": node}}}}]},
    }
    result = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(crd))
    assert result.returncode == 0, result.stderr  # the CEL rules compile within the cost budget
    wait_crd_established(f"trafficprobes.{PROBE_GROUP}", cluster.env)
    yield "TrafficProbe"
    kubectl("delete", "crd", f"trafficprobes.{PROBE_GROUP}", "--wait=false")


GW = {"provider": "gateway-api", "gateway": {"parentRefs": [{"name": "gw"}]}}
VARIANTS = [{"name": "int8", "weight": 10}, {"name": "candidate", "match": [{"header": "x-c", "value": "1"}]}]


def _probe(kubectl: Kubectl, namespace: str, t: dict[str, Any], variants_: list[dict[str, Any]] | None = None
           ) -> subprocess.CompletedProcess[str]:
    obj = {"apiVersion": f"{PROBE_GROUP}/v1", "kind": "TrafficProbe", "metadata": {"name": "p"},
           "spec": {"variants": VARIANTS if variants_ is None else variants_, "traffic": t}}
    return kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def test_cel_rules_accept_the_scenarios(kubectl: Kubectl, namespace: str, probe_crd: str) -> None:
    from tests.unit.traffic.scenario import TRAFFIC

    for t in (TRAFFIC, GATEWAY, {}):
        result = _probe(kubectl, namespace, t)
        assert result.returncode == 0, (t, result.stderr)
    assert _probe(kubectl, namespace, {"provider": "none"}, [{"name": "int8"}]).returncode == 0
    for example in ("ab-test", "gateway-api"):
        spec = yaml.safe_load((REPO_ROOT / "examples" / f"{example}.yaml").read_text())["spec"]
        result = _probe(kubectl, namespace, spec["traffic"], spec["variants"])
        assert result.returncode == 0, (example, result.stderr)


@pytest.mark.parametrize(
    ("t", "variants_", "message"),
    [
        ({"provider": "gateway-api"}, None, traffic_schema.MSG_GATEWAY_PARENTS),
        ({**GW, "sticky": {"header": "x-u"}}, None, traffic_schema.MSG_STICKY_ROUTER),
        ({"provider": "none", "shadow": [{"variant": "int8", "percent": 5}]}, [{"name": "int8"}],
         traffic_schema.MSG_NONE_RULES),
        ({"provider": "none"}, None, traffic_schema.MSG_NONE_MATCH),
        ({**GW, "rules": [{"name": "c", "variant": "int8", "cookies": [{"name": "ab", "value": "b"}]}]},
         None, traffic_schema.MSG_COOKIES_ROUTER),
        ({"rules": [{"name": "r", "variant": "ghost", "headers": [{"name": "x", "value": "1"}]}]}, None,
         traffic_schema.MSG_UNKNOWN_RULE_VARIANT),
        ({"shadow": [{"variant": "ghost", "percent": 5}]}, None, traffic_schema.MSG_UNKNOWN_SHADOW_VARIANT),
        ({"shadow": [{"variant": "int8", "percent": 0}]}, None, "should be greater than 0"),
        ({"sticky": {"header": "x-u", "cookie": "u"}}, None, "set exactly one of header or cookie"),
        ({"rules": [{"name": "r", "variant": "int8"}]}, None, "at least one header or cookie condition"),
        ({"rules": [{"name": "r", "variant": "int8", "headers": [{"name": "x"}]}]}, None,
         "set exactly one of value or regex"),
    ],
)
def test_cel_rules_refuse_bad_input(kubectl: Kubectl, namespace: str, probe_crd: str, t: dict[str, Any],
                                    variants_: list[dict[str, Any]] | None, message: str) -> None:
    result = _probe(kubectl, namespace, t, variants_)
    assert result.returncode != 0 and message in result.stderr, result.stderr
