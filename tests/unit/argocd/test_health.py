"""The Argo CD health script (helm/modeldeploy/files/argocd-health.lua) run by a real Lua 5.1 interpreter.

Argo CD runs health scripts with gopher-lua (Lua 5.1) and a global `obj` holding the object as a Lua table;
this harness does the same: the object is converted to a Lua table literal, the script file is loaded as is
and run in an environment limited to what Argo CD offers (no io/os/require), and `hs.status`/`hs.message` are
checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api.schema import PHASES
from modeldeploy.revisions import VariantRevisions
from modeldeploy.status import Problem, compute
from tests.unit.helm.chart import CHART

pytestmark = pytest.mark.unit

HEALTH_LUA = CHART / "files" / "argocd-health.lua"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

RUNNER = r"""
local path = arg[1]
local chunk = assert(loadfile(path))
-- What Argo CD's gopher-lua VM offers a health script: base functions and the string/table/math libraries.
local env = {
  obj = OBJ, ipairs = ipairs, pairs = pairs, next = next, tostring = tostring, tonumber = tonumber,
  type = type, select = select, error = error, pcall = pcall, unpack = unpack, string = string,
  table = table, math = math,
}
setfenv(chunk, env)
local ok, hs = pcall(chunk)
if not ok then
  io.stderr:write("script error: " .. tostring(hs) .. "\n")
  os.exit(2)
end
if type(hs) ~= "table" then
  io.stderr:write("script returned " .. type(hs) .. "\n")
  os.exit(3)
end
io.write(tostring(hs.status), "\0", tostring(hs.message))
"""


def lua_binary() -> str:
    path = shutil.which("lua5.1")
    if path is None:
        raise AssertionError("lua5.1 not found on PATH: install Debian's lua5.1 package (make system-deps)")
    return path


def lua_string(text: str) -> str:
    """A Lua 5.1 string literal for any text (decimal escapes for everything but plain ASCII)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        out.append(ch if (ch.isalnum() or ch in " .,:;_-/@%()[]{}<>=+*?!#'") and byte < 128 else f"\\{byte}")
    return '"' + "".join(out) + '"'


def lua_value(value: Any) -> str:
    """JSON-like data as Argo CD hands it to Lua: objects and arrays are tables, null is nil."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_value(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_string(str(k))}] = {lua_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot convert {type(value).__name__} to Lua")


def health(obj: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    runner = tmp_path / "runner.lua"
    runner.write_text(f"OBJ = {lua_value(obj)}\n{RUNNER}")
    result = subprocess.run(
        [lua_binary(), str(runner), str(HEALTH_LUA)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"lua5.1 failed ({result.returncode}): {result.stderr}"
    status, message = result.stdout.split("\0", 1)
    return status, message


def test_harness_converts_faithfully(tmp_path: Path) -> None:
    """The conversion itself: strings with quotes/newlines/UTF-8, numbers, booleans, arrays, nil."""
    probe = tmp_path / "probe.lua"
    probe.write_text(
        "local o = "
        + lua_value({"s": 'a "q"\n\\ é', "n": 3, "f": 0.5, "b": False, "l": [1, "x"], "z": None})
        + '\nio.write(o.s, "|", o.n + 1, "|", o.f * 2, "|", tostring(o.b), "|", #o.l, o.l[2], "|", '
        + "tostring(o.z))"
    )
    out = subprocess.run([lua_binary(), str(probe)], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == 'a "q"\n\\ é|4|1|false|2x|nil'


FIXTURE_FILES = sorted(FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_fixture(fixture: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(fixture.read_text())
    status, message = health(case["object"], tmp_path)
    assert status == case["expect"]["status"], message
    assert message == case["expect"]["message"]


def test_fixtures_cover_every_phase() -> None:
    phases = set()
    for fixture in FIXTURE_FILES:
        obj = yaml.safe_load(fixture.read_text())["object"]
        phases.add((obj.get("status") or {}).get("phase"))
    assert set(PHASES) <= phases, f"no fixture for {set(PHASES) - phases}"


# ----------------------------------------------------- statuses written by the operator's own status code

NOW = "2026-01-01T00:00:00Z"


def md(generation: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "uid": "u1", "generation": generation},
        "spec": {"model": {"name": "fraud", "uri": "https://models.example/fraud.joblib"}},
    }


def deployment(name: str, ready: bool) -> dict[str, Any]:
    n = 2 if ready else 0
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "readyReplicas": n,
            "updatedReplicas": 2,
            "availableReplicas": n,
        },
    }


def operator_status(phase: str) -> dict[str, Any]:
    """What modeldeploy.status.compute writes for a world in that phase."""
    stable, canary = (
        VariantRevisions("primary", "aaaa1111", "aaaa1111"),
        VariantRevisions("primary", "aaaa1111", "bbbb2222"),
    )
    ready = {"fraud-primary-aaaa1111": deployment("fraud-primary-aaaa1111", True)}
    args: dict[str, Any] = {
        "revisions": {"primary": stable},
        "deployments": ready,
        "problem": None,
        "paused": False,
    }
    if phase == "Pending":
        args["deployments"] = {}
    elif phase == "Progressing":
        args["revisions"] = {"primary": canary}
    elif phase == "Paused":
        args.update(revisions={"primary": canary}, paused=True)
    elif phase == "Degraded":
        args["problem"] = Problem("UnsupportedModelURI", "spec.model.uri: s3:// is reserved")
    obj = md()
    status = compute(
        obj, args["revisions"], args["deployments"], {"primary": 100}, args["problem"], args["paused"], NOW
    )
    assert status["phase"] == phase, f"scenario for {phase} produced {status['phase']}"
    obj["status"] = status
    return obj


EXPECTED = {
    "Pending": "Progressing",
    "Progressing": "Progressing",
    "Healthy": "Healthy",
    "Degraded": "Degraded",
    "Paused": "Suspended",
}


@pytest.mark.parametrize("phase", PHASES)
def test_every_operator_phase(phase: str, tmp_path: Path) -> None:
    """Never Unknown for a phase the operator writes, and the operator's message is shown."""
    assert phase in EXPECTED, f"new phase {phase}: decide its Argo CD health here and in argocd-health.lua"
    obj = operator_status(phase)
    status, message = health(obj, tmp_path)
    assert status == EXPECTED[phase]
    assert status in ARGO_HEALTH and status != "Unknown"
    assert message == obj["status"]["message"]


@pytest.mark.parametrize("phase", PHASES)
def test_unobserved_generation_is_progressing(phase: str, tmp_path: Path) -> None:
    obj = operator_status(phase)
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    status, message = health(obj, tmp_path)
    assert (status, message) == (
        "Progressing",
        f"Waiting for the operator to observe generation {obj['metadata']['generation']}",
    )
