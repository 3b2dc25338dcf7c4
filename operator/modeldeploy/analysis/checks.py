"""Built-in checks: the PromQL each one needs, and how its answers become one number. Pure.

Queries select the model server's own series by `namespace` (a target label the scrape config adds) and
`revision` (exported by the server from MDSERVE_REVISION, unique per ModelDeployment since the revision hash
covers the pod template, which carries the ModelDeployment's name). Only inference traffic (`protocol` v1/v2)
counts for rates and latency: feedback posts are not served predictions.

`plan()` names the queries of a check; `reading()` turns the answers into a `Reading` (value and sample
count, or a provider error). The verdict against the threshold is `verdict.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from modeldeploy.analysis.config import RELATIVE_CHECKS, TEMPLATE_VARIABLE, AnalysisMetric
from modeldeploy.analysis.duration import promql_range
from modeldeploy.analysis.stats import psi, ratio
from modeldeploy.prometheus import ProviderError, ProviderErrorKind, QueryResult

INFERENCE = 'protocol=~"v1|v2"'


@dataclass(frozen=True)
class Target:
    """What one analysis run measures: the canary revision of a variant, against its stable revision."""

    namespace: str
    """Namespace of the ModelDeployment (the `namespace` target label)."""
    name: str
    """ModelDeployment name."""
    model: str
    """Model name (`model` label) of the canary."""
    variant: str
    """Variant name (`variant` label), e.g. primary."""
    revision: str
    """Canary revision (`revision` label)."""
    stable_revision: str | None
    """Stable revision, the reference of relative checks; None on a first deployment."""


@dataclass(frozen=True)
class Reading:
    """The measured number of one check, before it is judged."""

    value: float | None
    """Measured value; None (or NaN) means no data."""
    samples: float | None
    """Requests/rows/predictions behind the value; None when the check cannot tell (custom)."""
    error: ProviderError | None = None
    """Set when a query failed: neither pass nor fail."""
    detail: str = ""
    """Extra context for the message (e.g. both sides of a relative check)."""


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def selector(namespace: str, revision: str, extra: str = "") -> str:
    inner = f'namespace="{_quote(namespace)}",revision="{_quote(revision)}"'
    return "{" + inner + ("," + extra if extra else "") + "}"


def increase(metric: str, sel: str, window: str) -> str:
    return f"sum(increase({metric}{sel}[{window}]))"


def latency_quantile(q: float, sel: str, window: str) -> str:
    return (
        f"histogram_quantile({q:g}, sum by (le) "
        f"(rate(mdserve_request_duration_seconds_bucket{sel}[{window}])))"
    )


def render_template(query: str, target: Target, window_seconds: float) -> str:
    """Substitute `{{ variable }}` in a custom query (values are label-safe: quotes are escaped)."""
    values = {
        "namespace": target.namespace,
        "name": target.name,
        "model": target.model,
        "variant": target.variant,
        "revision": target.revision,
        "stable_revision": target.stable_revision or "",
        "interval": promql_range(window_seconds),
    }
    return TEMPLATE_VARIABLE.sub(lambda m: _quote(values[m.group(1)]), query)


def plan(metric: AnalysisMetric, target: Target, window_seconds: float) -> dict[str, str]:
    """Named PromQL queries of one metric; empty when it cannot run (a relative check without stable)."""
    w = promql_range(window_seconds)
    kind = metric.kind
    if kind == "custom":
        return {"value": render_template(metric.query or "", target, window_seconds)}
    sides = {"canary": target.revision}
    if kind in RELATIVE_CHECKS:
        if target.stable_revision is None or target.stable_revision == target.revision:
            return {}
        sides["stable"] = target.stable_revision
    out: dict[str, str] = {}
    for side, rev in sides.items():
        sel = selector(target.namespace, rev)
        inference = selector(target.namespace, rev, INFERENCE)
        if kind in ("success-rate", "error-rate"):
            out[f"{side}_requests"] = increase("mdserve_requests_total", inference, w)
            errors = selector(target.namespace, rev, f'{INFERENCE},code=~"5.."')
            out[f"{side}_errors"] = increase("mdserve_requests_total", errors, w)
        elif kind in ("latency", "latency-gain"):
            out[f"{side}_latency"] = latency_quantile(metric.effective_quantile, inference, w)
            out[f"{side}_requests"] = increase("mdserve_request_duration_seconds_count", inference, w)
        elif kind in ("accuracy", "accuracy-drop"):
            out[f"{side}_scored"] = increase("mdserve_feedback_total", sel, w)
            correct = selector(target.namespace, rev, 'outcome="correct"')
            out[f"{side}_correct"] = increase("mdserve_feedback_total", correct, w)
        elif kind == "mae":
            out[f"{side}_abs_error"] = increase("mdserve_feedback_abs_error_sum", sel, w)
            out[f"{side}_rows"] = increase("mdserve_feedback_regression_total", sel, w)
        elif kind == "prediction-drift":
            out[f"{side}_classes"] = f"sum by (class) (increase(mdserve_predictions_total{sel}[{w}]))"
    return out


def _scalar(result: QueryResult) -> float:
    """The single value of an aggregate; an empty vector is 0 (no series matched: nothing happened)."""
    if not result.samples:
        return 0.0
    return sum(s.value for s in result.samples)


def _first_error(results: Mapping[str, QueryResult]) -> ProviderError | None:
    return next((r.error for r in results.values() if r.error is not None), None)


def _side(kind: str, side: str, r: Mapping[str, QueryResult]) -> tuple[float | None, float]:
    """(value, samples) of one revision."""
    if kind in ("success-rate", "error-rate"):
        requests, errors = _scalar(r[f"{side}_requests"]), _scalar(r[f"{side}_errors"])
        rate = ratio(errors, requests)
        if rate is None:
            return None, requests
        return (1.0 - rate if kind == "success-rate" else rate), requests
    if kind in ("latency", "latency-gain"):
        samples = r[f"{side}_latency"].samples
        return (samples[0].value if samples else None), _scalar(r[f"{side}_requests"])
    if kind in ("accuracy", "accuracy-drop"):
        scored = _scalar(r[f"{side}_scored"])
        return ratio(_scalar(r[f"{side}_correct"]), scored), scored
    if kind == "mae":
        rows = _scalar(r[f"{side}_rows"])
        return ratio(_scalar(r[f"{side}_abs_error"]), rows), rows
    raise ValueError(f"no per-side value for check {kind}")


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def reading(metric: AnalysisMetric, results: Mapping[str, QueryResult]) -> Reading:
    """Combine the answers of `plan(metric, ...)` into one Reading."""
    kind = metric.kind
    if not results:
        return Reading(None, None, detail="no stable revision to compare with")
    error = _first_error(results)
    if error is not None:
        return Reading(None, None, error)
    if kind == "custom":
        series = results["value"].samples
        if len(series) > 1:
            message = f"query returned {len(series)} series; aggregate it to one (sum, max, ...)"
            return Reading(None, None, ProviderError(ProviderErrorKind.BAD_QUERY, message))
        return Reading(series[0].value if series else None, None)
    if kind == "prediction-drift":
        canary = {s.labels.get("class", ""): s.value for s in results["canary_classes"].samples}
        stable = {s.labels.get("class", ""): s.value for s in results["stable_classes"].samples}
        n_canary, n_stable = sum(canary.values()), sum(stable.values())
        detail = f"{n_canary:g} canary vs {n_stable:g} stable predictions"
        return Reading(psi(stable, canary), min(n_canary, n_stable), detail=detail)
    value, samples = _side(kind, "canary", results)
    if kind not in ("accuracy-drop", "latency-gain"):
        return Reading(value, samples)
    reference, ref_samples = _side(kind, "stable", results)
    samples = min(samples, ref_samples)
    if not _defined(value) or not _defined(reference):
        return Reading(None, samples)
    assert value is not None and reference is not None
    if kind == "accuracy-drop":
        detail = f"canary {value:.4g} vs stable {reference:.4g}"
        return Reading(reference - value, samples, detail=detail)
    # Latency gain: the fraction of the stable latency the canary saves (0.2 = 20% faster, < 0 = slower).
    detail = f"canary {value:.4g}s vs stable {reference:.4g}s"
    gain = None if reference <= 0 else 1.0 - value / reference
    return Reading(gain, samples, detail=detail)
