"""The Helm chart renders what the operator expects: lint, goldens, values schema, CRDs, pod hardening."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import generate
from modeldeploy.settings import Settings, from_env
from tests.unit.helm.chart import CHART, GOLDEN, VALUES, documents, helm, template

pytestmark = pytest.mark.unit

VALUE_SETS = sorted(p.stem for p in VALUES.glob("*.yaml"))


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def operator_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = by_kind(docs, "Deployment")
    return dep


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (container,) = operator_deployment(docs)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def render(name: str) -> list[dict[str, Any]]:
    return documents(template([VALUES / f"{name}.yaml"]).stdout)


def test_value_sets_exist() -> None:
    assert {"default", "namespaced", "monitoring"} <= set(VALUE_SETS)


def test_lint_strict() -> None:
    for name in VALUE_SETS:
        result = helm("lint", "--strict", str(CHART), "--values", str(VALUES / f"{name}.yaml"))
        assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_golden(name: str) -> None:
    """`UPDATE_GOLDEN=1 pytest tests/unit/helm` rewrites the goldens; review the diff before committing."""
    rendered = template([VALUES / f"{name}.yaml"]).stdout
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert golden.exists(), f"missing {golden}: run UPDATE_GOLDEN=1 pytest {Path(__file__).parent}"
    assert rendered == golden.read_text(), (
        f"{golden.name} differs: run UPDATE_GOLDEN=1 pytest and review the diff"
    )


def test_crds_match_schema_source() -> None:
    """The chart's crds/ is exactly what the generator writes from operator/modeldeploy/api/schema.py."""
    expected = generate.crd_yaml()
    chart_crd = CHART / "crds" / generate.CRD_FILE
    assert chart_crd in generate.targets(), "the generator no longer writes the chart's crds/"
    assert chart_crd.read_text() == expected, "helm/modeldeploy/crds drifted: run make crds"
    assert (generate.REPO_ROOT / "crds" / generate.CRD_FILE).read_text() == expected, (
        "crds/ drifted: make crds"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [generate.CRD_FILE]


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["log.format=xml"], "/log/format"),
        (["log.level=verbose"], "/log/level"),
        (["watchNamespaces[0]=Not_A_Namespace"], "/watchNamespaces/0"),
        (["prometheus.url=prometheus:9090"], "/prometheus/url"),
        (["workers=0"], "/workers"),
        (["image.digest=latest"], "/image/digest"),
        (["extraEnv[0].name=MODELDEPLOY_NAMESPACES", "extraEnv[0].value=x"], "/extraEnv/0/name"),
        (["metrics.serviceMonitor.interval=often"], "/metrics/serviceMonitor/interval"),
        (["imageTag=1.0"], "additional properties 'imageTag'"),
    ],
)
def test_schema_rejects_bad_values(sets: list[str], complaint: str) -> None:
    result = template(sets=sets, check=False)
    assert result.returncode != 0, f"{sets} was accepted"
    assert complaint in result.stderr, result.stderr


def test_every_value_is_documented_in_the_schema() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(vals: dict[str, Any], node: dict[str, Any], where: str) -> None:
        for key, value in vals.items():
            props = node.get("properties", {})
            assert key in props, f"{where}{key} is not in values.schema.json"
            assert props[key].get("description") or isinstance(value, dict), (
                f"{where}{key} has no description"
            )
            if isinstance(value, dict) and "properties" in props[key]:
                walk(value, props[key], f"{where}{key}.")

    walk(values, schema, "")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_env_is_what_the_operator_parses(name: str) -> None:
    """Every env var the chart sets is a setting the operator knows, with the value the values asked for."""
    docs = render(name)
    env = operator_env(docs)
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    overrides = yaml.safe_load((VALUES / f"{name}.yaml").read_text()) or {}
    settings: Settings = from_env(env)
    known_extra = {e["name"] for e in overrides.get("extraEnv", [])}
    assert set(settings.extra) <= known_extra, f"unknown MODELDEPLOY_* variables: {settings.extra}"

    def value(*path: str) -> Any:
        for source in (overrides, values):
            node: Any = source
            for p in path:
                node = node.get(p) if isinstance(node, dict) else None
            if node is not None:
                return node
        return None

    assert settings.namespaces == tuple(value("watchNamespaces"))
    assert settings.log_level == value("log", "level")
    assert settings.log_format == value("log", "format")
    assert settings.prometheus_url == value("prometheus", "url")
    assert settings.prometheus_timeout == float(value("prometheus", "timeout"))
    assert settings.workers == value("workers")
    assert settings.check_model_uri is value("checkModelUri")
    assert settings.health_port == value("healthPort")
    assert settings.metrics_port == value("metrics", "port")
    if value("servingImage"):
        assert settings.serving_image == value("servingImage")
    else:
        assert "MODELDEPLOY_SERVING_IMAGE" not in env
    if value("routerImage"):
        assert settings.router_image == value("routerImage")
    else:
        assert "MODELDEPLOY_ROUTER_IMAGE" not in env
    secret = value("prometheus", "authSecret", "name")
    if secret:
        ns = value("prometheus", "authSecret", "namespace") or "modeldeploy-system"
        assert settings.prometheus_auth_secret == f"{ns}/{secret}"
    else:
        assert settings.prometheus_auth_secret == ""


def test_metrics_disabled_turns_the_endpoint_off() -> None:
    docs = documents(template(sets=["metrics.enabled=false"]).stdout)
    assert from_env(operator_env(docs)).metrics_port == 0
    assert not by_kind(docs, "Service")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_pod_is_hardened(name: str) -> None:
    dep = operator_deployment(render(name))
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    health = {p["name"]: p["containerPort"] for p in c["ports"]}["health"]
    assert str(health) == operator_env(render(name))["MODELDEPLOY_HEALTH_PORT"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_image_tag_defaults_to_app_version_and_digest_wins() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (c,) = operator_deployment(render("default"))["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"ghcr.io/modeldeploy/operator:{chart['appVersion']}"
    (c,) = operator_deployment(render("namespaced"))["spec"]["template"]["spec"]["containers"]
    assert c["image"].startswith("registry.example/modeldeploy/operator@sha256:")


def test_extra_labels_on_every_object() -> None:
    for doc in render("namespaced"):
        assert doc["metadata"]["labels"]["team"] == "ml-platform", doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "modeldeploy"


def test_optional_monitoring_objects() -> None:
    kinds = {d["kind"] for d in render("default")}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    docs = render("monitoring")
    (sm,) = by_kind(docs, "ServiceMonitor")
    (svc,) = by_kind(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    (pm,) = by_kind(docs, "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    (rule,) = by_kind(docs, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "ModelDeploymentRolledBack",
        "ModelDeploymentAnalysisInconclusive",
        "ModelDeploymentNotReady",
    } <= set(alerts)
    assert alerts["ModelDeploymentAnalysisInconclusive"]["for"] == "45m"
    assert alerts["ModelDeploymentNotReady"]["for"] == "10m"
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["modeldeploy.json"] == (CHART / "files" / "dashboard.json").read_text().rstrip("\n")


def test_pod_monitor_follows_watched_namespaces() -> None:
    docs = documents(
        template([VALUES / "namespaced.yaml"], sets=["servingMetrics.podMonitor.enabled=true"]).stdout
    )
    (pm,) = by_kind(docs, "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def render_notes(tmp_path: Path, values: Path) -> str:
    """NOTES.txt as `helm install` prints it: rendered through `tpl` in a copy of the chart (helm template
    skips it, and `helm install --dry-run` needs a cluster)."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "NOTES.txt").rename(copy / "files" / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n'
    )
    out = helm(
        "template",
        "md",
        str(copy),
        "--namespace",
        "ops",
        "--kube-version",
        "1.31.0",
        "--values",
        str(values),
        "--show-only",
        "templates/zz-notes.yaml",
    ).stdout
    notes: str = yaml.safe_load(out)["notes"]
    return notes


def test_notes_tell_the_next_step(tmp_path: Path) -> None:
    notes = render_notes(tmp_path, VALUES / "namespaced.yaml")
    assert "It manages ModelDeployments in namespaces team-a, team-b." in notes
    assert "kubectl -n ops rollout status deployment/md-modeldeploy" in notes
    assert "kubectl apply -n team-a -f -" in notes
    assert "kubectl get modeldeployments -w -n team-a" in notes
    assert "prometheus.url is empty" not in notes
    notes = render_notes(tmp_path / "default", VALUES / "default.yaml")
    assert "It manages ModelDeployments in every namespace." in notes
    assert "prometheus.url is empty" in notes
