"""OpenAPI fragments of `spec.rollout` and `status.rollout`, to plug into api/schema.py.

`ROLLOUT_SPEC_SCHEMA` replaces `_rollout()` there: every existing field keeps its name, default and bounds;
the additions are `consecutiveFailureLimit`, `consecutiveErrorLimit`, `scaleDownDelaySeconds`, `historyLimit`,
`prometheus`, and per metric `check`, `minSamples`, `quantile`. `ROLLOUT_STATUS_SCHEMA` replaces the
`rollout` passthrough of the status. rollout/config.py and rollout/state.py are the typed parses (a unit test
keeps them in step).
"""

from __future__ import annotations

from modeldeploy.analysis.config import BUILTIN_CHECKS, NAME_ALIASES, RELATIVE_CHECKS, TEMPLATE_VARIABLES
from modeldeploy.analysis.verdict import Outcome
from modeldeploy.api.openapi import Node, array, boolean, integer, number, obj, rule, string
from modeldeploy.api.schema import DNS_LABEL, DURATION, STRATEGIES
from modeldeploy.rollout.config import METRICS_NOT_ROLLING, RELATIVE_NOT_BLUE_GREEN, STEPS_ONLY_CANARY
from modeldeploy.rollout.state import TIMELINE_LIMIT, HistoryOutcome, Phase

_VARS = ", ".join(f"`{{{{ {v} }}}}`" for v in TEMPLATE_VARIABLES)
_NAMES = ", ".join(f"`{n}`" for n in NAME_ALIASES)
_RELATIVE = ", ".join(repr(c) for c in sorted(RELATIVE_CHECKS))
_RELATIVE_NAMES = ", ".join(repr(n) for n, (c, _) in NAME_ALIASES.items() if c in RELATIVE_CHECKS)


def _metric() -> Node:
    return obj(
        "An analysis metric, measured every `interval` on the canary (and the stable revision for relative "
        "checks). No data, NaN or fewer than `minSamples` samples is inconclusive: the step is held, "
        "nothing is counted.",
        {
            "name": string(
                f"Metric name, unique in the list. A built-in name ({_NAMES}) selects that check.",
                pattern=DNS_LABEL,
                max_length=63,
            ),
            "check": string(
                "Check to run (default: from `name`, or `custom` when `query` is set). "
                "`success-rate`/`error-rate`: share of inference requests without/with a 5xx; "
                "`latency`: quantile of request duration (s); `accuracy`: correct share of feedback; "
                "`accuracy-drop`: stable accuracy minus canary accuracy; "
                "`mae`: mean absolute error of regression feedback; "
                "`prediction-drift`: PSI of the canary's predicted-class distribution vs the stable's; "
                "`latency-gain`: 1 - canary/stable latency at `quantile` (0.2 = 20% faster); "
                "`custom`: `query`.",
                enum=(*BUILTIN_CHECKS, "custom"),
            ),
            "query": string(
                f"PromQL template of a `custom` check returning one sample; {_VARS} are substituted "
                "(`interval` as a range like `60s`).",
                max_length=4096,
            ),
            "interval": string(
                "Range of the query window (default: `rollout.interval`).", pattern=DURATION, max_length=32
            ),
            "minSamples": integer(
                "Fewest requests, feedback rows or predictions in the window for a verdict "
                "(relative checks: on each side).",
                minimum=0,
                maximum=1000000,
                default=20,
            ),
            "quantile": number(
                "Latency quantile of `latency` and `latency-gain` (default 0.99, or from `latency-pNN`).",
                minimum=0.01,
                maximum=0.999,
            ),
            "thresholdRange": obj(
                "Accepted range of the result (bounds included).",
                {"min": number("Lowest accepted value."), "max": number("Highest accepted value.")},
                rules=(
                    rule("has(self.min) || has(self.max)", "set min, max or both"),
                    rule(
                        "!has(self.min) || !has(self.max) || self.min <= self.max",
                        "min must be less than or equal to max",
                        field_path=".min",
                    ),
                ),
            ),
        },
        required=("name", "thresholdRange"),
        rules=(
            rule(
                "has(self.check) ? (self.check == 'custom') == has(self.query) : "
                f"(has(self.query) || self.name in [{', '.join(repr(n) for n in NAME_ALIASES)}])",
                "`query` is required by check `custom` and only used by it; a metric not named after a "
                "built-in check needs `check` or `query`",
                field_path=".query",
            ),
        ),
    )


def _steps() -> Node:
    return array(
        "Canary steps (strategy Canary only): set the canary weight, hold it (`pause`, default one "
        "`interval`) with analysis at every interval; the next step needs a passing analysis taken during "
        "this one.",
        obj(
            "A canary step.",
            {
                "setWeight": integer("Percent of traffic sent to the canary.", minimum=0, maximum=100),
                "pause": obj(
                    "Hold after setting the weight; without `duration`, until `kubectl modeldeploy resume`.",
                    {
                        "duration": string(
                            "How long to hold, e.g. `30s`, `5m`.", pattern=DURATION, max_length=32
                        )
                    },
                ),
            },
            required=("setWeight",),
        ),
        max_items=20,
        rules=(
            rule(
                "self.all(a, self.exists_one(b, b.setWeight == a.setWeight)) && "
                "self.map(s, s.setWeight).isSorted()",
                "steps[].setWeight must be strictly increasing",
            ),
        ),
    )


def _prometheus() -> Node:
    return obj(
        "Prometheus queried by the analysis (default: the operator's MODELDEPLOY_PROMETHEUS_* settings).",
        {
            "address": string("HTTP API base URL, e.g. `http://prometheus.monitoring:9090`.",
                              pattern=r"^https?://", max_length=2048),
            "timeoutSeconds": number("Per-query timeout.", minimum=0.1, maximum=60),
            "authSecretRef": obj(
                "Secret (same namespace) with the credentials: a `kubernetes.io/basic-auth` Secret "
                "(`username`, `password`) is sent as `Authorization: Basic …` (Prometheus' own web "
                "config), any other as `Authorization: Bearer <key's value>` (an auth proxy).",
                {
                    "name": string("Secret name.", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                                   max_length=253),
                    "key": string("Key of the bearer token (not used for basic-auth Secrets).",
                                  default="token", max_length=253),
                },
                required=("name",),
            ),
        },
    )


ROLLOUT_SPEC_SCHEMA: Node = obj(
    "How a new revision replaces the serving one. Every strategy records status.rollout and its history, "
    "keeps promoted revisions at 0 replicas as `rollback` targets and takes manual control: "
    "`kubectl modeldeploy pause|resume|promote|abort|retry|rollback`. "
    "`Rolling`: the new revision is promoted as soon as it is Ready. "
    "`Canary`: walk `steps`, analysing `metrics` every `interval`; roll back when a limit is exceeded. "
    "`BlueGreen`: the new revision runs at full size with no traffic until Ready, then takes all traffic "
    "at once and is held for at least one `interval` (analysed with `metrics`) while the previous revision "
    "keeps its pods, so a rollback switches back at once; then it is promoted.",
    {
        "strategy": string(
            "Rollout strategy: `Rolling` (promote when Ready), `Canary` (weighted `steps` with analysis) "
            "or `BlueGreen` (switch all traffic when Ready, analyse, keep the previous revision until "
            "promotion).",
            enum=STRATEGIES, default="Rolling",
        ),
        "steps": _steps(),
        "interval": string(
            "How often the analysis runs; also the default hold of a Canary step and BlueGreen's hold on all "
            "traffic before promotion.",
            pattern=DURATION, max_length=32, default="1m",
        ),
        "failureLimit": integer(
            "Failed analyses tolerated during one rollout; one more rolls back.", minimum=0, maximum=100,
            default=3,
        ),
        "consecutiveFailureLimit": integer(
            "Failed analyses in a row tolerated; one more rolls back.", minimum=0, maximum=100, default=2
        ),
        "consecutiveErrorLimit": integer(
            "Analyses in a row with a Prometheus error tolerated; one more rolls back.",
            minimum=0, maximum=100, default=4,
        ),
        "progressDeadlineSeconds": integer(
            "Seconds a new revision may take to become Ready (or stay unready during a rollout) before it is "
            "rolled back, with every strategy (reason ModelUnavailable).",
            minimum=30, maximum=86400, default=600,
        ),
        "autoRollback": boolean("Roll back when a limit is exceeded; false pauses instead.", default=True),
        "paused": boolean("Freeze the rollout where it is (phase Paused).", default=False),
        "scaleDownDelaySeconds": integer(
            "Seconds between taking a revision's traffic away (promotion of its successor, rollback) and "
            "scaling it to zero; a previously promoted revision stays at 0 replicas as a `rollback` target.",
            minimum=0, maximum=3600, default=30,
        ),
        "historyLimit": integer(
            "Finished rollouts kept in status.rollout.history (the `rollback` targets).",
            minimum=1, maximum=50, default=10,
        ),
        "prometheus": _prometheus(),
        "metrics": array(
            "Analysis metrics with thresholds (strategies Canary and BlueGreen; BlueGreen cannot use the "
            "relative checks, the stable revision has no traffic while it is measured).",
            _metric(), max_items=16, map_keys=("name",),
        ),
    },
    default={"strategy": "Rolling"},
    rules=(
        rule(
            "!has(self.strategy) || self.strategy != 'Canary' || (has(self.steps) && size(self.steps) > 0)",
            "strategy Canary needs at least one step",
            field_path=".steps",
        ),
        rule(
            "!has(self.steps) || size(self.steps) == 0 || (has(self.strategy) && self.strategy == 'Canary')",
            STEPS_ONLY_CANARY,
            field_path=".steps",
        ),
        rule(
            "!has(self.metrics) || size(self.metrics) == 0 || "
            "(has(self.strategy) && self.strategy != 'Rolling')",
            METRICS_NOT_ROLLING,
            field_path=".metrics",
        ),
        rule(
            "!has(self.strategy) || self.strategy != 'BlueGreen' || !has(self.metrics) || "
            f"self.metrics.all(m, has(m.check) ? !(m.check in [{_RELATIVE}]) : "
            f"(has(m.query) || !(m.name in [{_RELATIVE_NAMES}])))",
            RELATIVE_NOT_BLUE_GREEN,
            field_path=".metrics",
        ),
    ),
)


def _measurement() -> Node:
    return obj(
        "One judged metric.",
        {
            "name": string("Metric name.", max_length=63),
            "outcome": string("Verdict.", enum=tuple(o.value for o in Outcome)),
            "value": number("Measured value."),
            "min": number("Lowest accepted value."),
            "max": number("Highest accepted value."),
            "samples": number("Requests, rows or predictions behind the value."),
            "message": string("Verdict naming the value and the threshold.", max_length=2048),
        },
        required=("name", "outcome"),
    )


def _stamp(what: str) -> Node:
    return string(what, fmt="date-time", max_length=64)


ROLLOUT_STATUS_SCHEMA: Node = obj(
    "State of the progressive delivery engine, written by the operator only; enough to resume a rollout "
    "after a restart at the same step with the same counters.",
    {
        "phase": string("Engine phase.", enum=tuple(p.value for p in Phase)),
        "stableRevision": string("Revision serving production traffic.", max_length=64),
        "stableModel": string("What the stable revision serves.", max_length=512),
        "canaryRevision": string("Revision being rolled out.", max_length=64),
        "canaryModel": string("What the canary serves.", max_length=512),
        "canaryStartedAt": _stamp("When the canary was created."),
        "canaryUnreadySince": _stamp("Since when the canary is not Ready."),
        "direct": boolean("The canary is a manual promotion or rollback target (no steps, no analysis)."),
        "heldRevision": string("Spec revision held after a rollback until the spec changes or retry.",
                               max_length=64),
        "stepIndex": integer("Current step (0-based).", minimum=0),
        "stepStartedAt": _stamp("When the current step's weight was set."),
        "canaryWeight": integer("Percent of the variant's traffic on the canary.", minimum=0, maximum=100),
        "lastAnalysisAt": _stamp("When the last analysis ran."),
        "lastAnalysis": array("Measurements of the last analysis.", _measurement(), max_items=16),
        "lastOutcome": string("Outcome of the last analysis.", enum=tuple(o.value for o in Outcome)),
        "analysisRuns": integer("Analyses run for this canary.", minimum=0),
        "failures": integer("Failed analyses of this canary.", minimum=0),
        "consecutiveFailures": integer("Failed analyses in a row.", minimum=0),
        "consecutiveErrors": integer("Analyses in a row with a provider error.", minimum=0),
        "inconclusiveStreak": integer("Inconclusive analyses in a row.", minimum=0),
        "pausedByUser": boolean("Paused through the pause action."),
        "lastActionId": string("Request id of the last applied manual action.", max_length=256),
        "message": string("Human-readable state.", max_length=32768),
        "scaleDowns": array(
            "Revisions to scale to zero once `at` has passed.",
            obj("A pending scale-down.", {"revision": string("Revision.", max_length=64),
                                           "at": _stamp("Not before.")}, required=("revision", "at")),
            max_items=16,
        ),
        "history": array(
            "Finished rollouts, newest first.",
            obj(
                "A finished rollout.",
                {
                    "revision": string("Revision.", max_length=64),
                    "model": string("What it served.", max_length=512),
                    "outcome": string("How it ended.", enum=tuple(o.value for o in HistoryOutcome)),
                    "startedAt": _stamp("Canary start."),
                    "finishedAt": _stamp("Outcome time."),
                    "reason": string("Why.", max_length=4096),
                },
                required=("revision", "outcome"),
            ),
            max_items=50,
        ),
        "timeline": array(
            "Notable moments, oldest first.",
            obj(
                "A moment of the rollout.",
                {
                    "at": _stamp("When."),
                    "step": integer("Step index.", minimum=0),
                    "weight": integer("Canary weight after it.", minimum=0, maximum=100),
                    "kind": string("What happened.", max_length=64),
                    "outcome": string("Analysis outcome.", enum=tuple(o.value for o in Outcome)),
                    "message": string("Detail.", max_length=4096),
                },
                required=("at", "kind"),
            ),
            max_items=TIMELINE_LIMIT,
        ),
    },
)
