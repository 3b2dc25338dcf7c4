"""Helpers shared by the chart tests (unit and cluster): helm, rendering, and the RBAC the operator needs.

The RBAC model is derived from the operator's code, not copied by hand:
- `modeldeploy.kube.client` is the only module calling the API; its `_request("<verb>", kind, METHOD, path)`
  calls are scanned (ast) and every client verb maps to RBAC verbs through `CLIENT_VERBS` (a new client verb
  fails `test_client_verbs_are_all_mapped` until it is mapped here and granted by the chart);
- the kinds come from `client.RESOURCES` (group and plural from the REST prefix);
- kopf's watches come from `modeldeploy.handlers` (the ModelDeployment and `CHILD_RESOURCES`).
"""

from __future__ import annotations

import ast
import inspect
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devcluster.paths import cache_dir

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "modeldeploy"
GOLDEN = Path(__file__).resolve().parent / "golden"
VALUES = Path(__file__).resolve().parent / "values"
KUBE_VERSION = "1.31.0"


def helm_binary() -> Path:
    """`~/.cache/modeldeploy/bin/helm` (built by `make binaries`); fails clearly when it is missing."""
    helm = cache_dir() / "bin" / "helm"
    if not helm.is_file():
        raise AssertionError(f"helm not found at {helm}: run `make binaries` (hack/build-binaries.sh) first")
    return helm


def helm(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def template(
    values: Iterable[Path] = (),
    *,
    release: str = "modeldeploy",
    namespace: str = "modeldeploy-system",
    sets: Iterable[str] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for v in values:
        args += ["--values", str(v)]
    for s in sets:
        args += ["--set", s]
    return helm(*args, check=check)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


# ------------------------------------------------------------------------------------------------ RBAC model


@dataclass(frozen=True, order=True)
class Access:
    """One (API group, resource[/subresource], verb) the operator needs."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}"


CLIENT_VERBS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    # client verb: (HTTP method, subresource, RBAC verbs)
    "get": ("GET", None, ("get",)),
    "list": ("GET", None, ("list",)),
    # Server-side apply: `patch`, and `create` when the object does not exist yet (the apiserver authorizes
    # the implied create separately).
    "apply": ("PATCH", None, ("create", "patch")),
    "apply_status": ("PATCH", "status", ("patch",)),
    "delete": ("DELETE", None, ("delete",)),
    "create_event": ("POST", None, ("create",)),
    # API discovery (`/apis/<group>/<version>`): non-resource, readable by every authenticated user through
    # the default system:discovery ClusterRole, so it needs no rule in the chart.
    "discover": ("GET", None, ()),
}
"""How each `KubeClient` verb maps to RBAC; `test_client_verbs_are_all_mapped` checks method/subresource."""


@dataclass(frozen=True)
class ClientCall:
    verb: str
    method: str
    subresource: str | None


def scan_client_calls() -> list[ClientCall]:
    """Every `self._request(...)` in modeldeploy.kube.client: its verb label, HTTP method and subresource."""
    from modeldeploy.kube import client

    tree = ast.parse(inspect.getsource(client))
    calls: list[ClientCall] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_request"
        ):
            continue
        consts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if len(consts) < 2:
            raise AssertionError(f"unrecognised _request call at line {node.lineno}: {ast.unparse(node)}")
        verb, method = consts[0], next(c for c in consts[1:] if c.isupper())
        sub = None
        for a in node.args:
            if isinstance(a, ast.Call) and isinstance(a.func, ast.Attribute) and a.func.attr == "_path":
                extra = [x.value for x in a.args[3:] if isinstance(x, ast.Constant)]
                sub = str(extra[0]) if extra else None
        calls.append(ClientCall(verb, method, sub))
    return calls


def kind_resource(kind: str) -> tuple[str, str]:
    """(API group, plural) of a kind the client knows."""
    from modeldeploy.kube.client import RESOURCES

    r = RESOURCES[kind]
    group = "" if r.prefix == "/api/v1" else r.prefix.split("/")[2]
    return group, r.plural


def accesses_for_call(verb: str, kind: str) -> set[Access]:
    """The RBAC accesses one `KubeClient` call (verb label, kind) needs."""
    group, plural = kind_resource(kind)
    _, sub, rbac_verbs = CLIENT_VERBS[verb]
    resource = f"{plural}/{sub}" if sub else plural
    return {Access(group, resource, v) for v in rbac_verbs}


def operator_kind_verbs() -> dict[str, set[str]]:
    """Which client verbs the operator uses on each kind of client.RESOURCES.

    The ModelDeployment is read and gets its status applied (the operator never writes the spec), Events are
    only created, and every other kind is a child the operator reads, applies and deletes.
    """
    from modeldeploy.api.schema import KIND
    from modeldeploy.kube.client import RESOURCES

    out: dict[str, set[str]] = {}
    for kind in RESOURCES:
        if kind == KIND:
            out[kind] = {"get", "list", "apply_status"}
        elif kind == "Event":
            out[kind] = {"create_event"}
        else:
            out[kind] = {"get", "list", "apply", "delete"}
    return out


def kopf_watches() -> set[Access]:
    """kopf lists and watches the ModelDeployments and the labelled children (modeldeploy.handlers)."""
    from modeldeploy.api.schema import GROUP, PLURAL
    from modeldeploy.handlers import CHILD_RESOURCES

    out: set[Access] = set()
    for group, plural in [(GROUP, PLURAL), *((g, p) for g, _, p in CHILD_RESOURCES)]:
        out |= {Access(group, plural, "list"), Access(group, plural, "watch")}
    return out


def required_namespaced() -> set[Access]:
    """Every namespaced access the operator makes, derived from its code."""
    out = set(kopf_watches())
    for kind, verbs in operator_kind_verbs().items():
        for verb in verbs:
            out |= accesses_for_call(verb, kind)
    return out


KOPF_SCANNING = {
    Access("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    Access("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
"""kopf's runtime CRD scanning (cluster-scoped; without it kopf only scans at start-up and warns)."""
KOPF_NAMESPACES = {Access("", "namespaces", "list"), Access("", "namespaces", "watch")}
"""kopf's namespace observation when it watches a list of namespaces (not cluster-wide)."""
ROUTER_GRANT = {Access("", "configmaps", v) for v in ("get", "list", "watch")}
"""The router's role: the operator must hold what it grants (RBAC escalation prevention)."""
PLANNED_KINDS: set[tuple[str, str]] = set()
"""Children the chart grants ahead of the client managing them (none: ServiceAccounts, Roles, RoleBindings
and HTTPRoutes of the traffic providers are in client.RESOURCES and derived like every other child)."""
PLANNED = {Access(g, r, v) for g, r in PLANNED_KINDS for v in ("get", "list", "create", "patch", "delete")}


def rule_accesses(rules: Iterable[Mapping[str, Any]]) -> set[Access]:
    """Expands RBAC rules into single accesses; rules with resourceNames or nonResourceURLs are rejected."""
    out: set[Access] = set()
    for rule in rules:
        assert "nonResourceURLs" not in rule, f"unexpected nonResourceURLs rule {rule}"
        assert "resourceNames" not in rule, f"unexpected resourceNames in operator rule {rule}"
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add(Access(group, resource, verb))
    return out
