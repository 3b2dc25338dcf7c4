"""The split every provider renders: exact integer weights, pin and mirror targets."""

from __future__ import annotations

import pytest

from modeldeploy.revisions import VariantRevisions
from modeldeploy.traffic.plan import backend_name, plan_traffic, revision_shares, target_revision
from tests.unit.traffic.scenario import CANARY, shares, traffic, variants

pytestmark = pytest.mark.unit


def test_weights_multiply_variant_and_revision_shares_exactly() -> None:
    vs = variants()
    plan = plan_traffic("fraud", vs, shares(vs, canary=10), traffic())
    got = {b.name: (b.weight, b.percent) for b in plan.backends}
    assert got == {
        f"primary-{vs[0].revision}": (81, 81.0),
        f"primary-{CANARY}": (9, 9.0),
        f"int8-{vs[1].revision}": (10, 10.0),
        f"candidate-{vs[2].revision}": (0, 0.0),
    }
    # Table order: spec order, then the primary's shares order (stable first) so sticky ranges stay put.
    assert [b.variant for b in plan.backends] == ["primary", "primary", "int8", "candidate"]


def test_weights_are_reduced_by_their_gcd_only() -> None:
    vs = variants()
    plan = plan_traffic("fraud", vs, shares(vs, canary=25), traffic())
    # 90*75 : 90*25 : 10*100 = 6750 : 2250 : 1000 -> gcd 250
    assert [b.weight for b in plan.backends] == [27, 9, 4, 0]
    assert [b.percent for b in plan.backends] == [67.5, 22.5, 10.0, 0.0]


def test_revision_without_share_is_left_out_but_the_stable_one_stays() -> None:
    vs = variants()
    waiting = plan_traffic("fraud", vs, shares(vs, canary=0), traffic())
    assert f"primary-{CANARY}" not in {b.name for b in waiting.backends}
    full = plan_traffic("fraud", vs, shares(vs, canary=100), traffic())
    primary = [b for b in full.backends if b.variant == "primary"]
    assert [(b.revision, b.weight) for b in primary] == [(vs[0].revision, 0), (CANARY, 9)]


def test_pins_and_mirrors_target_the_largest_share() -> None:
    vs = variants()
    sh = shares(vs, canary=60)
    sh = {**sh, "primary": dict(sh["primary"])}
    plan = plan_traffic("fraud", vs, sh, traffic(rules=[{"name": "p", "variant": "primary",
                                                         "headers": [{"name": "x-p", "value": "1"}]}]))
    assert plan.pins[0].backend == f"primary-{CANARY}"
    assert target_revision({"a": 50, "b": 50}) == "a"
    cand = backend_name("candidate", vs[2].revision)
    assert [(m.variant, m.backend, m.percent) for m in plan.mirrors] == [("candidate", cand, 25.0)]


def test_pins_keep_rule_order_then_variant_matches() -> None:
    vs = variants()
    plan = plan_traffic("fraud", vs, shares(vs), traffic())
    assert [(p.name, p.group) for p in plan.pins] == [
        ("beta", "rule-beta"),
        ("match-candidate-0", "match-candidate"),
        ("match-candidate-1", "match-candidate"),
    ]
    assert plan.pins[2].headers[0].regex == "qa-[0-9]+"


def test_revision_shares_from_revisions_and_the_rollout_decision() -> None:
    revs = {"primary": VariantRevisions("primary", "aaaa0000", "bbbb1111"),
            "int8": VariantRevisions("int8", "cccc2222", "cccc2222")}
    assert revision_shares(revs) == {"primary": {"aaaa0000": 100}, "int8": {"cccc2222": 100}}
    decided = revision_shares(revs, {"aaaa0000": 70, "bbbb1111": 30})
    assert list(decided["primary"].items()) == [("aaaa0000", 70), ("bbbb1111", 30)]
