"""Rule sets: the bundled styles, user TOML files, and the errors a user can act on."""
from __future__ import annotations

from pathlib import Path

import pytest

from montage.optimize import RulesError, RuleSet, TERMS, list_styles, load_rules


def test_the_four_styles_exist_and_give_every_term_a_weight():
    assert {"default", "calm", "energetic", "documentary"} <= set(list_styles())
    for style in list_styles():
        rules = load_rules(style)
        assert rules.name == style
        assert set(rules.weights) == set(TERMS)
        assert rules.weight("match") > 0


def test_styles_differ_where_they_should():
    calm, energetic, default = load_rules("calm"), load_rules("energetic"), load_rules()
    assert default.name == "default"
    assert calm.tempo > 1.0 > energetic.tempo
    assert calm.motion_target < energetic.motion_target
    assert calm.weight("stability") > energetic.weight("stability")
    assert load_rules("documentary").weight("character") > default.weight("character")


def test_unknown_style_lists_the_available_ones():
    with pytest.raises(RulesError) as err:
        load_rules("noir")
    assert "unknown style 'noir'" in err.value.message
    for style in ("default", "calm", "energetic", "documentary"):
        assert style in err.value.hint


def test_a_user_file_extends_a_style(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "calm"\nname = "mine"\n[cut]\njump_cut = 2.5\n[limits]\nreuse_gap = 4\n')
    rules = load_rules(path)
    calm = load_rules("calm")
    assert rules.name == "mine"
    assert rules.weight("jump_cut") == 2.5 and rules.reuse_gap == 4
    assert rules.weight("stability") == calm.weight("stability") and rules.tempo == calm.tempo
    assert load_rules(str(path)) == rules  # a path given as text works too


@pytest.mark.parametrize("text, words", [
    ('extends = "default"\n[cut]\njumpcut = 1\n', ["[cut]", "jumpcut", "jump_cut"]),
    ('extends = "default"\n[colour]\nx = 1\n', ["unknown key 'colour'"]),
    ('extends = "default"\n[shot]\nmatch = "lots"\n', ["[shot] match", "not a number"]),
    ('extends = "default"\n[shot]\nfocus = -1\n', ["out of range"]),
    ('extends = "default"\n[limits]\nreuse_gap = 1\n', ["reuse_gap"]),
    ('extends = "default"\n[limits]\nplaceholders = 1\n', ["true/false"]),
    ('name = "bare"\n[shot]\nmatch = 1\n', ["no weight for", "tone"]),
    ('[shot\nmatch = 1', ["not valid TOML"]),
])
def test_bad_files_say_what_and_where(tmp_path: Path, text: str, words: list[str]):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_file_and_extends_cycle(tmp_path: Path):
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "nope.toml")
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(f'extends = "{b}"\n')
    b.write_text(f'extends = "{a}"\n')
    with pytest.raises(RulesError, match="circle"):
        load_rules(a)


def test_only_and_with_weights():
    rules = load_rules()
    only = rules.only("match", "tone")
    assert only.weight("match") == rules.weight("match") and only.weight("tone") == rules.weight("tone")
    assert all(only.weight(t) == 0 for t in TERMS if t not in ("match", "tone"))
    assert rules.with_weights(tone=0.7).weight("tone") == 0.7
    with pytest.raises(RulesError, match="unknown rule term"):
        rules.with_weights(glamour=1.0)


def test_to_dict_round_trips_through_a_file(tmp_path: Path):
    rules = load_rules("energetic")
    lines = [f'name = "{rules.name}"']
    for section, table in rules.to_dict().items():
        if isinstance(table, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in table.items()]
    path = tmp_path / "copy.toml"
    path.write_text("\n".join(lines) + "\n")
    copy = load_rules(path)
    assert isinstance(copy, RuleSet)
    assert dict(copy.weights) == dict(rules.weights)
    limits = ("tempo", "max_shot", "motion_target", "placeholder_threshold", "reuse_gap")
    assert [getattr(copy, k) for k in limits] == [getattr(rules, k) for k in limits]


def test_threshold_override_and_fingerprint():
    rules = load_rules()
    assert rules.with_threshold(0.45).placeholder_threshold == 0.45
    assert rules.fingerprint() == load_rules().fingerprint()
    assert rules.fingerprint() != rules.with_threshold(0.45).fingerprint()
    assert rules.fingerprint() != rules.with_weights(tone=0.3).fingerprint()
    assert rules.fingerprint() != load_rules("calm").fingerprint()


def test_the_card_bar_is_the_librarys_unless_a_style_or_the_user_sets_one(tmp_path: Path):
    """In sd above the library's scores for the sentence: by default where an unrelated
    sentence's best hit stands in that library (so another library has another bar), moved by
    the style's placeholder_shift; a placeholder_threshold or --threshold fixes it."""
    from dataclasses import replace

    from retrieval.types import QueryCalibration

    from montage.optimize import card_bar
    from montage.optimize.confidence import BAR_MARGIN

    cal = QueryCalibration(mean=0.3, sd=0.08, unrelated=2.4, unrelated_sd=0.5)
    rules = load_rules()
    assert rules.placeholder_threshold is None and rules.placeholder_shift == 0.0
    assert card_bar(cal, rules) == pytest.approx(2.4 + BAR_MARGIN)
    assert card_bar(replace(cal, unrelated=3.1), rules) == pytest.approx(3.1 + BAR_MARGIN)
    documentary = load_rules("documentary")
    assert documentary.placeholder_shift < 0
    assert card_bar(cal, documentary) == pytest.approx(2.4 + BAR_MARGIN + documentary.placeholder_shift)
    assert card_bar(cal, rules.with_threshold(3.0)) == 3.0
    fixed = tmp_path / "fixed.toml"
    fixed.write_text('extends = "default"\n[limits]\nplaceholder_threshold = 1.5\n')
    assert card_bar(cal, load_rules(fixed)) == 1.5
    shifted = tmp_path / "shifted.toml"
    shifted.write_text('extends = "default"\n[limits]\nplaceholder_shift = 200\n')
    with pytest.raises(RulesError, match="placeholder_shift"):
        load_rules(shifted)
