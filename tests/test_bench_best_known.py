"""bench/optimizer.py's best-known cache is keyed by the instance and its objective version, so a
rule change makes the benchmark search again instead of comparing against a stale optimum."""
from __future__ import annotations

import json
import shutil

import pytest

import montage.optimize.rules as rules_module
from bench.optimizer import (best_known, known_key, objective_version, problem_for, read_known,
                             write_known)
from montage.optimize.costs import SCALE
from montage.optimize.heuristic import exhaustive

INSTANCE = "7x4 seed=0 style=default"


@pytest.fixture
def rules_dir(tmp_path, monkeypatch):
    """A private copy of assets/rules that the rule loader reads instead of the real one."""
    copy = tmp_path / "rules"
    shutil.copytree(rules_module.RULES_DIR, copy)
    monkeypatch.setattr(rules_module, "RULES_DIR", copy)
    return copy


def _version() -> str:
    return objective_version(problem_for(7, 4, 0, "default")[0])


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_best_known_version_follows_the_rule_files(rules_dir):
    before = _version()
    assert _version() == before  # the same rules and code: the same version, run after run
    _edit(rules_dir / "calm.toml", "tempo = 1.25", "tempo = 1.5")
    assert _version() == before  # another style's file does not change this instance
    _edit(rules_dir / "default.toml", "# The balanced style", "# The balanced style (reworded)")
    assert _version() == before  # nor does a comment
    _edit(rules_dir / "default.toml", "jump_cut = 0.3 ", "jump_cut = 0.45 ")
    changed = _version()
    assert changed != before
    assert known_key(INSTANCE, changed) != known_key(INSTANCE, before)


def test_best_known_version_follows_the_scoring_code(tmp_path, monkeypatch):
    import bench.optimizer as bench

    before = _version()
    code = tmp_path / "problem.py"
    code.write_bytes(bench.SCORING_CODE.read_bytes() + b"\n# score() changed\n")
    monkeypatch.setattr(bench, "SCORING_CODE", code)
    assert _version() != before


def test_best_known_stale_entry_is_not_used(rules_dir, tmp_path):
    """An optimum cached under yesterday's rules (and one from before versions existed) is
    ignored: without a search the answer is 'unknown', with one it is today's true optimum."""
    _edit(rules_dir / "default.toml", "jump_cut = 0.3 ", "jump_cut = 0.0 ")
    stale = _version()
    _edit(rules_dir / "default.toml", "jump_cut = 0.0 ", "jump_cut = 0.3 ")
    p = problem_for(7, 4, 0, "default")[0]
    today = objective_version(p)
    assert today != stale
    cache = tmp_path / "best_known.json"
    cache.write_text(json.dumps({INSTANCE: 999.0, known_key(INSTANCE, stale): 999.0}))
    assert read_known(cache, INSTANCE, today) is None

    _, optimum = exhaustive(p)
    assert best_known(INSTANCE, today, p, optimum - 500, 1.0, compute=False, cache=cache) is None
    found = best_known(INSTANCE, today, p, optimum - 500, 1.0, compute=True, cache=cache)
    assert found == optimum / SCALE  # the search ran again and reached the true optimum
    data = json.loads(cache.read_text())
    assert known_key(INSTANCE, stale) not in data  # the stale entry is gone for good
    assert data[known_key(INSTANCE, today)] == found
    assert best_known(INSTANCE, today, p, optimum - 500, 1.0, compute=False, cache=cache) == found


def test_best_known_keeps_other_instances(tmp_path):
    cache = tmp_path / "best_known.json"
    write_known(cache, "20x10 seed=0 style=default", "aaaa", 7.5)
    write_known(cache, INSTANCE, "bbbb", 2.0)
    write_known(cache, INSTANCE, "cccc", 2.1)
    assert json.loads(cache.read_text()) == {known_key("20x10 seed=0 style=default", "aaaa"): 7.5,
                                             known_key(INSTANCE, "cccc"): 2.1}
