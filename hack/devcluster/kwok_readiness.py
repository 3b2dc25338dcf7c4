"""Cluster-side half of bridge-owned pod readiness: kwok stages and the admission policy that marks pods.

kwok alone makes every pod Ready the moment it is scheduled. For pods whose process the pod bridge runs,
that is a lie the operator acts on (it sends traffic to a canary that is not listening yet). So the local
cluster is set up like this, with no operator involvement:

- a MutatingAdmissionPolicy annotates `READINESS_ANNOTATION: bridge` onto every pod labelled
  `app.kubernetes.io/managed-by=modeldeploy` created in a namespace labelled `NAMESPACE_LABEL=true` (the
  bridge labels the namespaces it bridges);
- kwok's `pod-ready` stage skips annotated pods; the project's `pod-bridge-running` stage gives them what a
  kubelet reports once containers started: phase Running, IPs, containers running but not ready, Ready and
  ContainersReady False;
- the bridge then flips Ready/ContainersReady from its own readiness probes of the process (bridge_pods.py).

Pods elsewhere keep kwok's behaviour: Ready at once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

READINESS_ANNOTATION = "devcluster.modeldeploy.dev/readiness"
"""Pod annotation: `bridge` when the pod bridge, not kwok, decides whether the pod is Ready."""
BRIDGE_VALUE = "bridge"
NAMESPACE_LABEL = "devcluster.modeldeploy.dev/bridge"
"""Namespace label (`true`) the bridge sets on the namespaces it bridges."""
MANAGED_LABEL = ("app.kubernetes.io/managed-by", "modeldeploy")
"""Only pods with this label are annotated: other pods in a bridged namespace have no process."""
POLICY_NAME = "devcluster-bridge-readiness"

BRIDGE_STAGE = "pod-bridge-running"
KWOK_STAGES = ["node-initialize", "node-heartbeat-with-lease", "pod-ready", BRIDGE_STAGE, "pod-complete",
               "pod-delete"]
"""Stages kwok runs with, in the order given to it (each a file `<name>.yaml`)."""

_ANNOTATION_KEY = f'.metadata.annotations["{READINESS_ANNOTATION}"]'

# What a kubelet reports once the containers started but before the readiness probe succeeded.
# Same IP helpers as kwok's own pod-ready stage, so IPs come from the same --cidr.
_BRIDGE_STATUS = """\
{{ $now := Now }}

conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: PodScheduled
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady

containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}

hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""


def bridge_stage() -> dict[str, Any]:
    """The kwok Stage for annotated pods: Running with IPs, not Ready (the bridge makes them Ready)."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": BRIDGE_STAGE},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.podIP", "operator": "DoesNotExist"},
                {"key": _ANNOTATION_KEY, "operator": "In", "values": [BRIDGE_VALUE]},
            ]},
            "next": {"statusTemplate": _BRIDGE_STATUS},
        },
    }


def exclude_bridged(pod_ready: dict[str, Any]) -> dict[str, Any]:
    """kwok's own `pod-ready` stage, made to skip annotated pods (else both stages would match them and
    kwok would pick one at random)."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(pod_ready))
    selector = out["spec"].setdefault("selector", {})
    exprs: list[dict[str, Any]] = selector.setdefault("matchExpressions", [])
    exprs.append({"key": _ANNOTATION_KEY, "operator": "DoesNotExist"})
    return out


def write_stages(upstream: Path, target: Path) -> list[Path]:
    """Write every stage of KWOK_STAGES into `target` (the cluster's directory): kwok's own from `upstream`
    (copied from its Go module by hack/build-binaries.sh), `pod-ready` patched, the bridge stage added.
    Raises FileNotFoundError naming a missing upstream stage."""
    target.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for name in KWOK_STAGES:
        dest = target / f"{name}.yaml"
        if name == BRIDGE_STAGE:
            dest.write_text(yaml.safe_dump(bridge_stage(), sort_keys=False))
        elif name == "pod-ready":
            source = yaml.safe_load((upstream / f"{name}.yaml").read_text())
            dest.write_text(yaml.safe_dump(exclude_bridged(source), sort_keys=False))
        else:
            shutil.copyfile(upstream / f"{name}.yaml", dest)
        out.append(dest)
    return out


def admission_policy() -> list[dict[str, Any]]:
    """The MutatingAdmissionPolicy (admissionregistration.k8s.io/v1beta1, Kubernetes 1.34) and its binding
    that annotate modeldeploy pods created in bridged namespaces."""
    key, value = MANAGED_LABEL
    # ApplyConfiguration merges maps: the pod keeps its own annotations.
    expression = ("Object{metadata: Object.metadata{annotations: "
                  f'{{"{READINESS_ANNOTATION}": "{BRIDGE_VALUE}"}}}}}}')
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            # A broken policy must not block pod creation: such a pod is then simply Ready at once.
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "Never",
            "mutations": [{"patchType": "ApplyConfiguration",
                           "applyConfiguration": {"expression": expression}}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "policyName": POLICY_NAME,
            "matchResources": {
                "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "true"}},
                "objectSelector": {"matchLabels": {key: value}},
            },
        },
    }
    return [policy, binding]


def probe_pod(namespace: str) -> dict[str, Any]:
    """A pod the policy must annotate in a bridged `namespace`: created with dryRun to see the policy work."""
    key, value = MANAGED_LABEL
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "policy-check", "namespace": namespace, "labels": {key: value}},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:0"}]}}
