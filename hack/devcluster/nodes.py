"""Fake nodes that kwok manages: realistic capacity, Ready without a kubelet."""

from __future__ import annotations

import yaml


def node_manifest(index: int) -> dict[str, object]:
    name = f"kwok-node-{index}"
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {"allocatable": resources, "capacity": resources},
    }


def node_manifests(count: int) -> str:
    return yaml.safe_dump_all([node_manifest(i) for i in range(count)], sort_keys=False)
