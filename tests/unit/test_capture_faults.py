"""Scripted faults: strict parsing of the rules, and deterministic counting."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.capture.faults import FaultScript
from postroom.errors import ConfigError
from postroom.settings import Home, load, update_file
from postroom.settings.faults import FaultRule, parse_faults


def test_reply_rule_defaults_to_rcpt_always_with_a_standard_text() -> None:
    (rule,) = parse_faults('[{"match": "*@slow.example", "reply": 451}]')
    assert rule == FaultRule(
        match="*@slow.example", code=451, text="4.3.0 Scripted fault: try again later"
    )
    assert rule.at == "rcpt"
    assert rule.times is None
    assert rule.reply == "451 4.3.0 Scripted fault: try again later"


def test_reply_may_carry_its_own_text() -> None:
    (rule,) = parse_faults([{"match": "bob@*", "reply": "550 5.1.1 no such user", "at": "data"}])
    assert (rule.code, rule.text, rule.at) == (550, "5.1.1 no such user", "data")
    assert rule.to_json() == {"match": "bob@*", "reply": "550 5.1.1 no such user", "at": "data"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('[{"match": "*", "reply": 250}]', "reply code 250 cannot be scripted; use 421, 451"),
        ('[{"match": "*", "reply": 451, "at": "mail"}]', "\"at\" is 'mail'; use rcpt or data"),
        ('[{"match": "*", "reply": 451, "times": 0}]', "use a count of 1 or more, or null"),
        ('[{"match": "*", "action": "explode"}]', "is not one of drop-before-dot, drop-after-dot"),
        ('[{"match": "*"}]', 'exactly one of "reply" (a code) and "action"'),
        ('[{"match": "*", "reply": 451, "action": "drop-after-dot"}]', "exactly one of"),
        ('[{"reply": 451}]', 'needs "match"'),
        ('[{"match": "*", "reply": 451, "when": 1}]', "unknown field(s) when"),
        ('[{"match": "*", "reply": "451 a\\r\\nRSET"}]', "line break"),
        ("[1]", "is not an object"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_the_fix(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"fault rule 1|JSON") as caught:
        parse_faults(raw)
    assert message in str(caught.value)


def test_capture_faults_setting_takes_json_from_the_command_line_and_survives_the_file(
    tmp_path: Path,
) -> None:
    home = Home.resolve(tmp_path)
    rules = (
        '[{"match": "*@later.example", "reply": 451, "times": 2},'
        ' {"match": "*", "action": "drop-after-dot"}]'
    )
    update_file(home, set_values={"capture.faults": rules}, environ={})
    config = load(home, environ={})
    assert [r.to_json() for r in config.settings.capture.faults] == [
        {"match": "*@later.example", "reply": 451, "at": "rcpt", "times": 2},
        {"match": "*", "action": "drop-after-dot"},
    ]
    with pytest.raises(
        ConfigError, match=r"capture.faults \(from POSTROOM_CAPTURE_FAULTS\): fault rule 1"
    ):
        load(home, environ={"POSTROOM_CAPTURE_FAULTS": '[{"match": "*", "reply": 200}]'})


def test_a_rule_fires_for_its_first_n_matching_attempts_then_never() -> None:
    script = FaultScript([{"match": "*@later.example", "reply": 451, "times": 2}])
    assert script.at_rcpt("ada@other.example") is None
    assert script.at_rcpt("ADA@Later.Example") is not None  # any case
    assert script.at_rcpt("bob@later.example") is not None
    assert script.at_rcpt("ada@later.example") is None
    assert [hit for _rule, hit in script.fired] == ["ada@later.example", "bob@later.example"]


def test_rule_without_times_fires_always_and_the_first_matching_rule_wins() -> None:
    script = FaultScript(
        [
            {"match": "vip@*", "reply": 452, "times": 1},
            {"match": "*", "reply": 550},
        ]
    )
    assert [script.at_rcpt("vip@x.org").code for _ in range(3)] == [452, 550, 550]  # type: ignore[union-attr]


def test_stages_only_fire_their_own_kind_of_rule() -> None:
    script = FaultScript(
        [
            {"match": "a@*", "reply": 554, "at": "data"},
            {"match": "b@*", "action": "drop-before-dot"},
            {"match": "c@*", "action": "drop-after-dot"},
        ]
    )
    assert script.at_rcpt("a@x.org") is None
    assert script.before_dot(["a@x.org"]) is None
    assert script.after_dot(["z@x.org", "a@x.org"]).code == 554  # type: ignore[union-attr]
    assert script.before_dot(["b@x.org"]).action == "drop-before-dot"  # type: ignore[union-attr]
    assert script.after_dot(["c@x.org"]).action == "drop-after-dot"  # type: ignore[union-attr]


def test_replacing_the_rules_starts_every_count_again() -> None:
    rules = [{"match": "*", "reply": 451, "times": 1}]
    script = FaultScript(rules)
    assert script.at_rcpt("a@x.org") is not None
    assert script.at_rcpt("a@x.org") is None
    script.replace(rules)
    assert script.at_rcpt("a@x.org") is not None
