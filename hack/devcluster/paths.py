"""Where the local cluster keeps its binaries, certificates, logs and state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """The per-machine cache shared by every clone: versioned binaries survive `git clean`."""
    return Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy"))


@dataclass(frozen=True)
class ClusterPaths:
    """Files of one local cluster instance."""

    root: Path
    """State directory: certificates, etcd data, logs, pid files, kubeconfig."""

    @classmethod
    def default(cls) -> ClusterPaths:
        return cls(Path(os.environ.get("MODELDEPLOY_CLUSTER_DIR", REPO_ROOT / ".cluster")))

    @property
    def bin(self) -> Path:
        """Binaries built by hack/build-binaries.sh."""
        return cache_dir() / "bin"

    @property
    def kwok_stages(self) -> Path:
        """kwok stage configs copied from kwok's own module."""
        return cache_dir() / "kwok"

    @property
    def gateway_api_crds(self) -> Path:
        """Gateway API standard CRDs copied from its Go module."""
        return cache_dir() / "gateway-api"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (system:masters)."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        """Ports and versions of the running cluster, JSON."""
        return self.root / "cluster.json"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def binary(self, name: str) -> Path:
        return self.bin / name
