"""The chart's alerts and dashboard queries are valid PromQL; each alert fires on the series it watches."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.chart import CHART

pytestmark = pytest.mark.unit

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError(
            "promtool not found on PATH: install Debian's prometheus package (make system-deps)"
        )
    return path


def run_promtool(*args: str, cwd: Path) -> str:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def alerts_file(tmp_path: Path, not_ready: str = "10m", inconclusive: str = "30m") -> Path:
    text = ALERTS.read_text().replace("NOT_READY_FOR", not_ready).replace("INCONCLUSIVE_FOR", inconclusive)
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    return path


def test_alert_rules_are_valid(tmp_path: Path) -> None:
    out = run_promtool("check", "rules", str(alerts_file(tmp_path)), cwd=tmp_path)
    assert "4 rules found" in out, out


def test_each_alert_fires(tmp_path: Path) -> None:
    # promtool compares annotations too; they are checked by test_alert_rules_are_valid, so drop them here.
    rules = yaml.safe_load(alerts_file(tmp_path).read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(rules))
    series = 'namespace="ml", modeldeployment="fraud"'
    tests: dict[str, Any] = {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # one rollback at minute 5
                    {
                        "series": f'modeldeploy_rollbacks_total{{{series}, variant="primary"}}',
                        "values": "0x4 1x20",
                    },
                    {"series": f"modeldeploy_analysis_inconclusive{{{series}}}", "values": "1x40"},
                    {"series": f"modeldeploy_modeldeployment_ready{{{series}}}", "values": "1x4 0x20"},
                    {"series": 'modeldeploy_reconcile_errors_total{error="ApiError"}', "values": "0+5x40"},
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "ModelDeploymentRolledBack", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "ModelDeploymentRolledBack",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "ml",
                                    "modeldeployment": "fraud",
                                }
                            }
                        ],
                    },
                    {
                        "eval_time": "25m",
                        "alertname": "ModelDeploymentAnalysisInconclusive",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "31m",
                        "alertname": "ModelDeploymentAnalysisInconclusive",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "ml",
                                    "modeldeployment": "fraud",
                                }
                            }
                        ],
                    },
                    {"eval_time": "10m", "alertname": "ModelDeploymentNotReady", "exp_alerts": []},
                    {
                        "eval_time": "16m",
                        "alertname": "ModelDeploymentNotReady",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "ml",
                                    "modeldeployment": "fraud",
                                }
                            }
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "ModelDeployOperatorReconcileErrors",
                        "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in board["annotations"]["list"]]
    return exprs


def test_dashboard_covers_the_issue() -> None:
    board = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for what in ("requests per second", "error rate", "p99", "accuracy", "canary weight"):
        assert what in titles, f"no panel for {what}"
    assert {a["name"] for a in board["annotations"]["list"]} >= {"Rollbacks", "Route table changes"}
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "namespace", "modeldeployment"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, with Grafana's variables substituted, must parse (promtool checks rule expressions)."""
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        concrete = expr.replace("$__rate_interval", "1m")
        concrete = re.sub(r"\$(namespace|modeldeployment)\b", "x", concrete)
        assert "$" not in concrete, f"unsubstituted variable in {expr}"
        rules.append({"record": f"dashboard:query_{i}", "expr": concrete})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert f"{len(rules)} rules found" in out
