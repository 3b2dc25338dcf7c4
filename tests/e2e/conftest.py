"""End-to-end fixtures: one stack per session (cluster, CRD, operator, pod bridge, Prometheus) in a namespace
of its own, and the trained iris models. Logs stay under the session's tmp dir; the paths are printed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.e2e_models import ModelArtifact, train
from devcluster.e2e_stack import Stack, StackOptions
from tests.conftest import ClusterHandle


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def models(e2e_dir: Path) -> dict[str, ModelArtifact]:
    """v1 and v3 good, v2 fails on two thirds of the rows (HTTP 500), v2w answers but wrongly."""
    work = e2e_dir / "models"
    return {
        "v1": train("good", "1", work),
        "v2": train("faulty", "2", work),
        "v2w": train("wrong", "2w", work),
        "v3": train("good", "3", work, seed=2),
    }


@pytest.fixture(scope="session")
def stack(cluster: ClusterHandle, e2e_dir: Path) -> Iterator[Stack]:
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    workdir = e2e_dir / "stack"
    print(f"\n[e2e] namespace {ns}; operator log {workdir / 'operator.log'}; "
          f"process logs {workdir / 'bridge'}")
    with Stack(StackOptions(namespace=ns, workdir=workdir, use_existing_cluster=not cluster.local)) as s:
        yield s
        s.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def md_name(stack: Stack, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name from the test's `@pytest.mark.md_name("…")`; that ModelDeployment is deleted afterwards."""
    marker = request.node.get_closest_marker("md_name")
    assert marker is not None and marker.args, "mark the test with @pytest.mark.md_name(\"<name>\")"
    name = str(marker.args[0])
    yield name
    stack.delete(name)


def diagnostics(stack: Stack, name: str) -> str:
    """What to look at when a scenario fails: the rollout state, events and the operator log's tail."""
    lines = [f"status.rollout of {name}:"]
    try:
        from modeldeploy.cli.timeline import format_timeline

        lines.append(format_timeline(stack.get(name)))
        lines += [f"  event {e['type']} {e['reason']}: {e['message']}" for e in stack.events(name)]
    except Exception as exc:
        lines.append(f"  unavailable: {exc}")
    log = stack.workdir / "operator.log"
    if log.exists():
        lines += ["operator log (tail):", *log.read_text(errors="replace").splitlines()[-40:]]
    return "\n".join(lines)
