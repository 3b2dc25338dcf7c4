"""A tiny driver for the pure engine: feeds observations at chosen times, round-tripping the state through
its JSON status form on every call exactly as the reconciler persists it (so every test is also a restart
test)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.analysis.checks import Reading
from modeldeploy.analysis.config import ThresholdRange
from modeldeploy.analysis.verdict import AnalysisRun, Outcome, combine, evaluate
from modeldeploy.prometheus import ProviderError, ProviderErrorKind
from modeldeploy.rollout.actions import parse_action
from modeldeploy.rollout.config import RolloutConfig, parse_rollout
from modeldeploy.rollout.engine import Decision, Observed, analysis_due, decide
from modeldeploy.rollout.state import RolloutState, from_status

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CANARY = {
    "strategy": "Canary",
    "interval": "1m",
    "steps": [{"setWeight": 5}, {"setWeight": 25}, {"setWeight": 50}, {"setWeight": 100}],
    "failureLimit": 2,
    "consecutiveFailureLimit": 1,
    "consecutiveErrorLimit": 2,
    "scaleDownDelaySeconds": 30,
    "metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.01}}],
}


def run_of(outcome: Outcome, at: datetime, name: str = "error-rate") -> AnalysisRun:
    """An analysis run whose single measurement has `outcome`."""
    th = ThresholdRange(max=0.01)
    reading = {
        Outcome.PASS: Reading(0.001, 500),
        Outcome.FAIL: Reading(0.2, 500),
        Outcome.INCONCLUSIVE: Reading(None, 0),
        Outcome.ERROR: Reading(
            None, None, ProviderError(ProviderErrorKind.UNREACHABLE, "connection refused")
        ),
    }[outcome]
    return combine(at, [evaluate(name, reading, th, 20)])


@dataclass
class Sim:
    config: RolloutConfig
    now: datetime = T0
    state: RolloutState = field(default_factory=RolloutState)
    desired: str = "rev1"
    model: str = "m:1"
    ready: bool = True
    replicas: int = 2
    annotations: dict[str, str] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)
    decisions: list[Decision] = field(default_factory=list)

    @classmethod
    def of(cls, **overrides: Any) -> Sim:
        return cls(parse_rollout({**CANARY, **overrides}))

    @property
    def last(self) -> Decision:
        return self.decisions[-1]

    def step(
        self, seconds: float = 0, outcome: Outcome | None = None, run: AnalysisRun | None = None
    ) -> Decision:
        """Advance the clock, take the analysis if due (with `outcome`), decide, persist."""
        self.now += timedelta(seconds=seconds)
        if run is None and outcome is not None and analysis_due(self.config, self.state, self.now):
            run = run_of(outcome, self.now)
        observed = Observed(
            desired_revision=self.desired,
            desired_model=self.model,
            replicas=self.replicas,
            ready_revisions=self._ready(),
            analysis=run,
            action=parse_action(self.annotations),
            existing_revisions=frozenset(self.existing),
        )
        d = decide(self.config, self.state, observed, self.now)
        # Persist exactly as the reconciler does: through JSON.
        self.state = from_status(json.loads(json.dumps(d.state.to_status())))
        assert self.state == d.state
        self.existing |= set(d.retain)
        self.decisions.append(d)
        return d

    def _ready(self) -> frozenset[str]:
        """Every revision is Ready, or (ready=False) only the stable one."""
        if self.ready:
            return frozenset(self.existing | {self.desired})
        return frozenset({self.state.stable_revision} - {None})  # type: ignore[arg-type]

    def deploy(self, revision: str, model: str) -> Decision:
        self.desired, self.model = revision, model
        return self.step()

    def action(self, value: str) -> Decision:
        self.annotations["serving.modeldeploy.dev/action"] = value
        return self.step()
