"""examples/argocd: the argocd-cm snippet is generated from the one health script; the Applications work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.unit.helm.chart import CHART, REPO

pytestmark = pytest.mark.unit

EXAMPLES = REPO / "examples" / "argocd"
KEY = "resource.customizations.health.serving.modeldeploy.dev_ModelDeployment"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("argocd_generate", EXAMPLES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_snippet_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_snippet_carries_the_script_verbatim() -> None:
    cm = yaml.safe_load((EXAMPLES / "argocd-cm.yaml").read_text())
    assert (cm["apiVersion"], cm["kind"], cm["metadata"]["name"]) == ("v1", "ConfigMap", "argocd-cm")
    assert cm["data"] == {KEY: (CHART / "files" / "argocd-health.lua").read_text()}


def test_generator_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = generator()
    stale = tmp_path / "argocd-cm.yaml"
    stale.write_text(gen.render("return {status = 'Healthy'}\n"))
    monkeypatch.setattr(gen, "SNIPPET", stale)
    monkeypatch.setattr(gen, "REPO_ROOT", tmp_path.parent)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert (
        yaml.safe_load(stale.read_text())["data"][KEY] == (CHART / "files" / "argocd-health.lua").read_text()
    )


def applications() -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in EXAMPLES.glob("*-application.yaml")}


def test_applications() -> None:
    apps = applications()
    assert set(apps) == {"operator-application.yaml", "models-application.yaml"}
    for name, app in apps.items():
        assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application"), name
        assert app["metadata"]["namespace"] == "argocd"
        spec = app["spec"]
        assert spec["destination"]["server"] and spec["destination"]["namespace"]
        assert "ignoreDifferences" not in spec, f"{name}: nothing should need ignoreDifferences"
        assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
        source_path = REPO / spec["source"]["path"]
        assert source_path.is_dir(), f"{name}: {spec['source']['path']} does not exist in this repository"


def test_operator_application_values_match_the_chart_schema(tmp_path: Path) -> None:
    """The example Application's values are valid for the chart (helm checks values.schema.json)."""
    from tests.unit.helm.chart import template

    app = applications()["operator-application.yaml"]
    assert app["spec"]["source"]["path"] == "helm/modeldeploy"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(app["spec"]["source"]["helm"]["valuesObject"]))
    template([values])


def test_models_application_syncs_model_deployments() -> None:
    app = applications()["models-application.yaml"]
    source = REPO / app["spec"]["source"]["path"]
    include = app["spec"]["source"]["directory"]["include"]
    files = sorted(source.glob(include))
    assert files, f"{include} matches nothing in {source}"
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            assert doc["kind"] == "ModelDeployment"
            assert "namespace" not in doc["metadata"], "the Application's destination namespace applies"
