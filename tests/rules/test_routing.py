"""Route order, `continue`, inheritance, the catch-all, returned tasks and priorities."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.rules.conftest import WEDNESDAY_10AM, incident, route
from worker.contracts.enums import Priority
from worker.rules import Ruleset, decide, explain


def test_first_match_wins(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("one", "water"), route("two", "gas")])
    decision = decide(rules, incident(), WEDNESDAY_10AM)
    assert (decision.lead, decision.assisting, decision.route_path) == ("water", [], ["one"])


def test_continue_fans_out_first_leads_later_assist(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules(
        [
            route("one", "water", assisting=["roads"], resolve_within="24h", **{"continue": True}),
            route(
                "two",
                "gas",
                assisting=["fire", "water"],
                resolve_within="2h",
                acknowledge_within="15m",
            ),
            route("three", "env"),
        ]
    )
    decision = decide(rules, incident(), WEDNESDAY_10AM)
    assert decision.lead == "water"
    assert decision.assisting == ["roads", "gas", "fire"]  # the lead never assists itself
    assert decision.route_path == ["one", "two"]  # `two` did not continue: `three` is not tried
    assert decision.resolve_within == timedelta(hours=2)  # the tighter deadline wins
    assert decision.acknowledge_within == timedelta(minutes=15)


def test_continue_without_a_later_match_is_just_the_first(
    make_rules: Callable[..., Ruleset],
) -> None:
    rules = make_rules(
        [route("one", "water", **{"continue": True}), route("two", "gas", match={"district": "b"})]
    )
    assert decide(rules, incident(), WEDNESDAY_10AM).route_path == ["one"]


def test_continued_route_can_raise_priority_but_lead_keeps_its_settings(
    make_rules: Callable[..., Ruleset],
) -> None:
    rules = make_rules(
        [
            route(
                "one",
                "water",
                priority={"floor": "normal"},
                share_contact=False,
                escalation=[{"after": "acknowledge", "notify": "boss"}],
                **{"continue": True},
            ),
            route("two", "gas", priority={"floor": "critical"}, share_contact=True, escalation=[]),
        ]
    )
    decision = decide(rules, incident(), WEDNESDAY_10AM)
    assert decision.priority is Priority.critical
    assert decision.share_contact is False
    assert [s.notify for s in decision.escalation] == ["boss"]


def test_children_inherit_and_override(make_rules: Callable[..., Ruleset]) -> None:
    parent = route(
        "utilities",
        "water",
        match={"category": ["water.*", "gas.*"]},
        assisting=["roads"],
        share_contact=True,
        priority={"floor": "high"},
        routes=[
            {"id": "gas", "match": {"category": "gas.*"}, "lead": "gas", "resolve_within": "2h"},
            {"id": "outage", "match": {"category": "water.outage"}, "assisting": []},
        ],
    )
    rules = make_rules([parent])
    gas = decide(rules, incident(category="gas.leak"), WEDNESDAY_10AM)
    assert (gas.lead, gas.assisting, gas.share_contact, gas.priority) == (
        "gas",
        ["roads"],
        True,
        Priority.high,
    )
    assert (gas.acknowledge_within, gas.resolve_within) == (timedelta(hours=1), timedelta(hours=2))
    assert gas.route_path == ["utilities/gas"]
    outage = decide(rules, incident(category="water.outage"), WEDNESDAY_10AM)
    assert (outage.lead, outage.assisting, outage.route_path) == ("water", [], ["utilities/outage"])
    burst = decide(rules, incident(category="water.burst"), WEDNESDAY_10AM)
    assert (burst.lead, burst.assisting, burst.route_path) == ("water", ["roads"], ["utilities"])


def test_group_without_lead_matches_only_through_a_child(
    make_rules: Callable[..., Ruleset],
) -> None:
    group = {"id": "group", "routes": [route("gas", "gas", match={"category": "gas.*"})]}
    rules = make_rules([group, route("fallback", "roads")])
    assert decide(rules, incident(category="gas.leak"), WEDNESDAY_10AM).route_path == ["group/gas"]
    assert decide(rules, incident(), WEDNESDAY_10AM).route_path == ["fallback"]


def test_defaults_are_inherited_by_top_level_routes(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules(
        [{"id": "plain", "lead": "water"}],
        defaults={"acknowledge_within": "3h", "resolve_within": "15d", "share_contact": True},
    )
    decision = decide(rules, incident(), WEDNESDAY_10AM)
    assert (decision.acknowledge_within, decision.resolve_within) == (
        timedelta(hours=3),
        timedelta(days=15),
    )
    assert decision.share_contact is True


def test_catch_all_takes_what_nothing_matched(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("gas", "gas", match={"category": "gas.*"})])
    decision = decide(rules, incident(), WEDNESDAY_10AM)
    assert (decision.lead, decision.route_path) == ("ops", ["catch-all"])
    assert decision.resolve_due_at == WEDNESDAY_10AM + timedelta(days=7)
    assert decision.acknowledge_due_at == WEDNESDAY_10AM + timedelta(hours=2)


def test_excluded_lead_does_not_match_and_the_next_route_is_tried(
    make_rules: Callable[..., Ruleset],
) -> None:
    rules = make_rules(
        [route("water", "water"), route("roads", "roads", assisting=["water", "fire"])]
    )
    decision = decide(rules, incident(), WEDNESDAY_10AM, exclude=frozenset({"water"}))
    assert (decision.lead, decision.assisting) == ("roads", ["fire"])
    steps = {
        s.path: s.outcome
        for s in explain(rules, incident(), WEDNESDAY_10AM, exclude=frozenset({"water"})).steps
    }
    assert steps["water"] == "lead water excluded"


def test_excluded_child_falls_back_to_its_parent(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("parent", "roads", routes=[route("child", "water")])])
    decision = decide(rules, incident(), WEDNESDAY_10AM, exclude=frozenset({"water"}))
    assert (decision.lead, decision.route_path) == ("roads", ["parent"])


def test_catch_all_leads_even_when_excluded(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("water", "water")])
    decision = decide(rules, incident(), WEDNESDAY_10AM, exclude=frozenset({"water", "ops"}))
    assert decision.lead == "ops"


def test_district_government_leads_or_the_route_does_not_match(
    make_rules: Callable[..., Ruleset],
) -> None:
    rules = make_rules(
        [route("district", "$district", assisting=["$district", "roads"]), route("next", "roads")]
    )
    in_a = decide(rules, incident(location={"district": "a"}), WEDNESDAY_10AM)
    assert (in_a.lead, in_a.assisting) == ("gov-a", ["roads"])
    nowhere = decide(rules, incident(), WEDNESDAY_10AM)
    assert (nowhere.lead, nowhere.route_path) == ("roads", ["next"])
    no_government = decide(rules, incident(location={"district": "c"}), WEDNESDAY_10AM)
    assert no_government.lead == "roads"


PRIORITY_TABLE: list[tuple[dict[str, str] | None, str | None, Priority]] = [
    # route setting, incident hint, decided
    (None, None, Priority.normal),
    (None, "low", Priority.low),
    (None, "critical", Priority.critical),
    ({"floor": "high"}, None, Priority.high),
    ({"floor": "high"}, "low", Priority.high),  # a hint never lowers below the floor
    ({"floor": "high"}, "normal", Priority.high),
    ({"floor": "high"}, "critical", Priority.critical),  # but may raise it
    ({"floor": "low"}, "normal", Priority.normal),
    ({"fixed": "normal"}, "critical", Priority.normal),  # fixed ignores the hint
    ({"fixed": "critical"}, "low", Priority.critical),
]


@pytest.mark.parametrize(("setting", "hint", "expected"), PRIORITY_TABLE)
def test_priority_combines_route_and_hint(
    make_rules: Callable[..., Ruleset],
    setting: dict[str, str] | None,
    hint: str | None,
    expected: Priority,
) -> None:
    extra: dict[str, Any] = {"priority": setting} if setting else {}
    rules = make_rules([route("r", "water", **extra)])
    assert decide(rules, incident(priority_hint=hint), WEDNESDAY_10AM).priority is expected


def test_escalation_chain_is_ordered_with_levels(make_rules: Callable[..., Ruleset]) -> None:
    chain = [
        {"after": "acknowledge", "delay": "30m", "notify": "ops"},
        {"after": "resolve", "notify": "boss"},
    ]
    rules = make_rules([route("r", "water", escalation=chain)])
    decision = decide(rules, incident(), WEDNESDAY_10AM)
    assert [(s.level, s.after, s.delay, s.notify) for s in decision.escalation] == [
        (1, "acknowledge", timedelta(minutes=30), "ops"),
        (2, "resolve", timedelta(0), "boss"),
    ]
    assert decision.escalation_due_at(decision.escalation[0]) == WEDNESDAY_10AM + timedelta(
        hours=1, minutes=30
    )


def test_duplicate_policy_from_route_else_category(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules(
        [
            route("gas", "gas", match={"category": "gas.*"}),
            route(
                "water",
                "water",
                match={"category": "water.*"},
                duplicates={"radius_m": 50, "window": "1d"},
            ),
        ]
    )
    gas = decide(rules, incident(category="gas.leak"), WEDNESDAY_10AM).duplicate_policy
    assert gas is not None
    assert (gas.radius_m, gas.window) == (200, timedelta(hours=2))
    water = decide(rules, incident(), WEDNESDAY_10AM).duplicate_policy
    assert water is not None
    assert (water.radius_m, water.window) == (50, timedelta(days=1))
    assert (
        decide(rules, incident(category="roads.pothole"), WEDNESDAY_10AM).duplicate_policy is None
    )


def test_decision_records_version_and_is_deterministic(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("r", "water")])
    first = decide(rules, incident(), WEDNESDAY_10AM)
    assert first == decide(rules, incident(), WEDNESDAY_10AM)
    assert first.ruleset_version == rules.version
    assert len(rules.version) == 16


def test_naive_clock_is_refused(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("r", "water")])
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(rules, incident(), WEDNESDAY_10AM.replace(tzinfo=None))


def test_explain_says_why_each_route_matched_or_not(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules(
        [
            route("gas", "gas", match={"category": "gas.*", "keywords": "煤气"}),
            route("water", "water", match={"category": "water.*"}),
            route("later", "roads"),
        ]
    )
    result = explain(rules, incident(title="水管爆了"), WEDNESDAY_10AM)
    assert [(s.path, s.outcome) for s in result.steps] == [
        ("gas", "no match"),
        ("water", "matched"),
        ("later", "not tried"),
    ]
    assert result.steps[0].conditions == [
        (False, "category water.burst in [gas.*]"),
        (False, "text contains any of [煤气] (found: none)"),
    ]
    assert result.decision == decide(rules, incident(title="水管爆了"), WEDNESDAY_10AM)


def test_department_and_category_lookup(make_rules: Callable[..., Ruleset]) -> None:
    rules = make_rules([route("r", "water")])
    water = rules.department("water")
    assert (water.url, water.secret_env, water.name.en) == (
        "http://127.0.0.1:9900/hooks/water",
        "CLOSELOOP_SECRET_WATER",
        "Water",
    )
    leak = rules.category("gas.leak")
    assert (leak.group, leak.name.zh, leak.group_name.en) == ("gas", "泄漏", "Gas")
    with pytest.raises(KeyError):
        rules.department("nobody")
