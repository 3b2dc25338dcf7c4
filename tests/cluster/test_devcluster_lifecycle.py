"""A second, throwaway local cluster: idempotent up, recovery from a half-started run, down leaves nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from devcluster import procs
from devcluster.cluster import COMPONENTS, ClusterError, LocalCluster
from devcluster.paths import ClusterPaths
from tests.conftest import ClusterHandle

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def second_cluster(tmp_path: Path, cluster: ClusterHandle) -> LocalCluster:
    if not cluster.local:
        pytest.fail("this test needs the local control plane binaries (MODELDEPLOY_CLUSTER is 'existing')")
    return LocalCluster(ClusterPaths(tmp_path / "c2"), nodes=1)


def test_up_is_idempotent_recovers_and_down_leaves_nothing(second_cluster: LocalCluster) -> None:
    c = second_cluster
    try:
        c.up()
        assert c.healthy()
        first_ports = c.ports()
        assert first_ports is not None

        c.up()  # healthy: reused as is
        assert c.ports() == first_ports

        pid_text = (c.paths.pids / "kube-scheduler.pid").read_text().split()[0]
        os.killpg(int(pid_text), signal.SIGKILL)
        deadline = time.monotonic() + 30  # the signal is delivered asynchronously
        while procs.running("kube-scheduler", c.paths.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not c.healthy()

        c.up()  # half-started: cleaned up and started again
        assert c.healthy()
        assert c.kubectl("get", "nodes").returncode == 0
    finally:
        c.down()
    ports = first_ports
    assert not any(procs.running(name, c.paths.pids) for name in COMPONENTS)
    assert not c.paths.state_file.exists()
    assert not procs.port_in_use(ports.apiserver)


def test_pinned_port_in_use_is_a_clear_error(second_cluster: LocalCluster, cluster: ClusterHandle,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    busy = LocalCluster().ports()
    assert busy is not None, "the session cluster should be running"
    monkeypatch.setenv("MODELDEPLOY_APISERVER_PORT", str(busy.apiserver))
    with pytest.raises(ClusterError, match=rf"port {busy.apiserver} .* already in use"):
        second_cluster.up()
    assert not any(procs.running(name, second_cluster.paths.pids) for name in COMPONENTS)


def test_missing_binaries_are_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ClusterError, match=r"missing binaries .* run `make binaries`"):
        LocalCluster(ClusterPaths(tmp_path / "c3")).up()
