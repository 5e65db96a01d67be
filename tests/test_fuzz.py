"""Hostile input, fuzzed with Hypothesis: scripts through the planner, rule files through
load_rules. Whatever comes in, the answer is a plan (or a rule set) or one MontageError:
never another exception, never a hang (each example has a deadline)."""
from __future__ import annotations

import json
import math
import os
import re
import string
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from montage.optimize import OptimizeError, RuleSet, RulesError, load_rules
from montage.optimize.rules import CUT_TERMS, FILM_TERMS, LIMITS, SHOT_TERMS, TERMS
from planner.errors import MontageError
from planner.plan import load_script, plan_text

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=3000, suppress_health_check=[HealthCheck.too_slow],
                database=None)

ENGLISH = ["A red door opens slowly.", "The sea is calm tonight.", "Maya runs to the station.",
           "He waits.", "INT. KITCHEN - NIGHT", "EXT. STREET - DAY"]
RTL = "שלום עולם مرحبا بالعالم \u202e\u202b\u200f"
CONTROLS = "".join(map(chr, range(0, 32))) + "\x7f\x85\u2028\u2029\ufeff\u200b"
PUNCT = string.punctuation + "«»“”‘’…—–¿¡。、！？"

pieces = st.one_of(
    st.sampled_from(ENGLISH),
    st.text(min_size=1, max_size=80),  # any Unicode (no surrogates)
    st.text(alphabet=RTL, min_size=1, max_size=40),
    st.text(alphabet=CONTROLS, min_size=1, max_size=10),
    st.text(alphabet=PUNCT + " \n", min_size=1, max_size=60),  # lines of punctuation
    st.sampled_from(["\n", "\n\n", "\r\n", "\r", "\t", " "]),
    st.sampled_from(["Der Hund läuft über die Straße.", "猫が走る。", "Кот бежит домой.",
                     "Le chat dort sur le lit."]),  # other languages, mixed in
)
scripts = st.lists(pieces, min_size=0, max_size=25).map("".join)


@pytest.fixture(scope="module", autouse=True)
def _warm_planner():
    """Load spaCy once, outside the deadlines."""
    plan_text("A red door opens slowly.")


def _check_plan(plan) -> None:
    assert plan.shots
    assert len({s.id for s in plan.shots}) == len(plan.shots)
    for s in plan.shots:
        assert s.text.strip() and s.duration > 0
        assert not any(ord(c) < 32 or c == "\x7f" for c in s.text), repr(s.text)


@FUZZ
@given(scripts)
def test_any_script_text_is_a_plan_or_one_script_error(text):
    try:
        plan = plan_text(text, "fuzz.txt")
    except MontageError as exc:
        assert exc.message.startswith("fuzz.txt") or "words_per_second" in exc.message
        return
    _check_plan(plan)


@FUZZ
@given(st.one_of(scripts.map(lambda t: t.encode("utf-8")), st.binary(max_size=400),
                 scripts.map(lambda t: t.encode("utf-16")),
                 scripts.map(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"))))
def test_any_script_file_is_a_plan_or_one_script_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "story.txt"
        path.write_bytes(data)
        try:
            plan = load_script(path)
        except MontageError as exc:
            assert "story.txt" in exc.message
            return
    _check_plan(plan)


def test_a_long_paragraph_is_planned_in_bounded_time():
    """20k characters in one paragraph (no full stop): split into shots, not a hang."""
    import time

    started = time.perf_counter()
    plan = plan_text("the red door opens slowly and the wind comes in " * 420)
    assert len(plan.shots) > 100 and time.perf_counter() - started < 30
    _check_plan(plan)


@pytest.mark.slow
def test_a_100k_character_paragraph():
    plan = plan_text("The red door opens slowly and the wind comes in " * 2100)
    _check_plan(plan)
    assert len(plan.shots) > 1000


# -- rule files -------------------------------------------------------------------------------
def _string(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml(value) -> str:
    """A TOML value (tomllib only reads); strings as JSON-escaped basic strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_string(k)} = {_toml(v)}" for k, v in value.items()) + "}"


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-10**20, 10**20), st.sampled_from([0, 1, 2, 0.5, -1, 1e308, 11]))
scalars = st.one_of(numbers, numbers, st.booleans(), st.text(max_size=20))
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=8), scalars, max_size=2))
keys = st.one_of(st.sampled_from(sorted(TERMS) + sorted(LIMITS)), st.text(max_size=12))
tables = st.dictionaries(keys, values, max_size=6)
# well-formed files with wild values: every key known, every value a number or a flag
known = st.fixed_dictionaries({"extends": st.sampled_from(["default", "calm", "energetic"])}, optional={
    section: st.dictionaries(st.sampled_from(sorted(names)),
                             st.one_of(numbers, numbers, st.floats(0, 5), st.booleans()),
                             max_size=4)
    for section, names in (("shot", SHOT_TERMS), ("cut", CUT_TERMS), ("film", FILM_TERMS),
                           ("limits", LIMITS))})
rule_files = st.one_of(known, st.fixed_dictionaries(
    {"extends": st.one_of(st.sampled_from(["default", "calm", "nope", "self", "loop"]), values)},
    optional={"name": values, "description": values,
              "shot": st.one_of(tables, tables, scalars), "cut": st.one_of(tables, tables, scalars),
              "film": st.one_of(tables, tables, scalars),
              "limits": st.one_of(tables, tables, scalars)},
).flatmap(lambda d: st.one_of(st.just(d), st.just({k: v for k, v in d.items() if k != "extends"}),
                              values.map(lambda junk: {**d, "junk": junk}))))


def _write(path: Path, data: dict) -> None:
    top, sections = [], []
    for key, value in data.items():
        if isinstance(value, dict) and key in ("shot", "cut", "film", "limits"):
            sections.append(f"[{key}]\n" + "".join(f"{_string(k)} = {_toml(v)}\n"
                                                   for k, v in value.items()))
        else:
            top.append(f"{_string(key)} = {_toml(value)}\n")
    path.write_text("".join(top) + "\n" + "\n".join(sections), encoding="utf-8")


def _check_rules_error(exc: MontageError, path: Path, before: dict[str, bytes]) -> None:
    """A bad rule file is one RulesError that says what to do and names the file, or else
    names what its ``extends`` points at (the same error that style alone gives); nothing
    beside it is written or changed."""
    assert isinstance(exc, RulesError), repr(exc)
    assert exc.message and exc.hint
    if str(path.resolve()) not in exc.message:
        target = tomllib.loads(path.read_text(encoding="utf-8"))["extends"]
        with pytest.raises(RulesError) as alone:
            load_rules(target)
        assert alone.value.message == exc.message
    assert _files(path.parent) == before


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _check_rules(rules: RuleSet) -> None:
    assert set(rules.weights) == set(TERMS)
    assert all(math.isfinite(w) and w >= 0 for w in rules.weights.values()), rules.weights
    for key in LIMITS:
        value = getattr(rules, key)
        if key == "placeholder_threshold" and value is None:  # unset: the library's own
            continue
        assert isinstance(value, (bool, int, float)) and math.isfinite(value), (key, value)
    assert rules.max_shot == 0 or rules.min_shot <= rules.max_shot


@FUZZ
@given(rule_files)
def test_any_rule_file_is_a_rule_set_or_one_rules_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "style.toml"
        if data.get("extends") == "self":
            data = {**data, "extends": str(path)}
        elif data.get("extends") == "loop":  # style.toml -> other.toml -> style.toml
            _write(Path(tmp) / "other.toml", {"extends": str(path)})
            data = {**data, "extends": str(Path(tmp) / "other.toml")}
        _write(path, data)
        before = _files(Path(tmp))
        try:
            rules = load_rules(path)
        except MontageError as exc:
            _check_rules_error(exc, path, before)
            return
    _check_rules(rules)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_as_a_rule_file_are_one_error_at_most(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "style.toml"
        path.write_bytes(data)
        try:
            rules = load_rules(path)
        except MontageError as exc:
            _check_rules_error(exc, path, {"style.toml": data})
            return
    _check_rules(rules)


def test_an_extends_loop_is_named():
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.toml", Path(tmp) / "b.toml"
        a.write_text(f'extends = "{b}"\n')
        b.write_text(f'extends = "{a}"\n')
        with pytest.raises(MontageError, match=r"goes round in a circle \(a.toml -> b.toml -> a.toml\)"):
            load_rules(a)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 25)), deadline=10000, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(known)
@example({"extends": "default", "limits": {"placeholders": False}})  # s2 has no usable clip
@example({"extends": "calm", "limits": {"placeholders": False, "tempo": 10.0}})  # nor s0, s1
def test_any_accepted_rule_set_drives_the_optimizer(data):
    """A rule set load_rules accepts (wild but in range) cuts a small film or says why."""
    from montage.optimize import optimize
    from tests.rulekit import cands, lib, plan_of, shot

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "style.toml"
        _write(path, data)
        before = _files(Path(tmp))
        try:
            rules = load_rules(path)
        except MontageError as exc:  # every key is known: only a value can be wrong, named
            _check_rules_error(exc, path, before)
            assert exc.message.startswith(f"{path.resolve()}: ["), exc.message
            return
    plan = plan_of(shot(0), shot(1, duration=4.0), shot(2, scene=1))
    candidates = cands([(lib("a.mp4"), 0.8), (lib("b.png", kind="still"), 0.4)],
                       [(lib("a.mp4", 1, start=10, end=14), 0.6)],
                       [(lib("c.mp4", end=1.0), 0.2)])
    try:
        solution = optimize(plan, candidates, rules=rules, time_limit=2.0)
    except MontageError as exc:
        # a title card always fits, so only a rule set without them can leave a shot empty
        # (s2's one clip is under a second): the error names the shot, its line and the rule
        assert isinstance(exc, OptimizeError) and not rules.placeholders, exc.message
        assert re.match(r"shot s[012] \(line \d+\) has no usable clip", exc.message), exc.message
        assert "placeholders = false" in exc.message
        assert exc.hint
        return
    assert [d.shot_id for d in solution.edl.decisions] == ["s0", "s1", "s2"]
    assert all(d.frames > 0 for d in solution.edl.decisions)


# -- the studio's API: any body, any action --------------------------------------------------------
ACTIONS = ["script", "pin", "unpin", "ban", "unban", "trim", "generate", "style", "revert",
           "settings", "nope"]
FIELDS = {"script": {"text": str}, "pin": {"shot": str, "clip": str}, "unpin": {"shot": str},
          "ban": {"clip": str}, "unban": {"clip": str}, "trim": {"shot": str, "steps": int},
          "generate": {"shot": str}, "style": {"style": str}, "revert": {"cut": int},
          "settings": {"settings": dict}}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.integers(1, 60_000).map(lambda n: b"[" * n + b"]" * n),  # nested past the parser's limit
    st.integers(1, 60_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 60_000).map(lambda n: b"[" * n),  # nested and cut short
)


@pytest.fixture(scope="module")
def studio_client(tmp_path_factory):
    from starlette.testclient import TestClient

    from montage.studio import create_app
    from tests.studiokit import TOKEN, make_library, new_studio

    root = tmp_path_factory.mktemp("fuzz-studio")
    studio = new_studio(root, make_library(root / "lib-src"))
    c = TestClient(create_app(studio, TOKEN, {"testserver"}), base_url="http://testserver")
    c.cookies.set("montage_studio", TOKEN)
    yield c, studio, TOKEN
    studio.close()


def _queues_a_job(action: str, raw: bytes) -> bool:
    """Whether a body would pass the route's own checks (a real change, queued: not fuzzed)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    fields = FIELDS.get(action)
    return bool(fields) and isinstance(body, dict) and all(
        isinstance(body.get(k), t) and not isinstance(body.get(k), bool) for k, t in fields.items())


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=10000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(ACTIONS), bodies)
def test_any_body_to_any_studio_action_is_answered_with_a_message(studio_client, action, raw):
    """Whatever a request carries, the studio answers 4xx with a message (or accepts a
    well-formed change): never a 500, never a hang."""
    from hypothesis import assume

    c, studio, token = studio_client
    assume(not _queues_a_job(action, raw))
    jobs = studio.status()["job"]
    r = c.post(f"/api/{action}", content=raw,
               headers={"X-Montage-Token": token, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert r.json()["error"]
    assert studio.status()["job"] == jobs  # nothing was queued


def test_a_studio_body_nested_50000_deep_is_a_400_with_a_message(studio_client):
    c, _, token = studio_client
    for raw in (b"[" * 50_000 + b"]" * 50_000, b'{"text":' * 50_000 + b'""' + b"}" * 50_000):
        r = c.post("/api/script", content=raw, headers={"X-Montage-Token": token})
        assert r.status_code == 400
        assert r.json() == {"error": "the request body is JSON nested too deeply",
                            "hint": 'send a flat JSON object, e.g. {"text": "..."}'}
    r = c.post("/api/script", content=b" " * (17 * 1024 * 1024), headers={"X-Montage-Token": token})
    assert r.status_code == 413 and "over" in r.json()["error"]
