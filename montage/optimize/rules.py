"""Cinematography rules as data: a named weight per rule term plus a few limits, read from TOML.

Styles are presets in ``assets/rules/*.toml`` (``default``, ``calm``, ``energetic``,
``documentary``); a user's own TOML file works the same way and may start from a preset with
``extends = "calm"``. Every term's cost is normalised to 0..1 before its weight applies, so a
weight reads as "how much match score this rule is worth".
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from planner.errors import MontageError

RULES_DIR = Path(__file__).resolve().parents[2] / "assets" / "rules"
DEFAULT_STYLE = "default"

# term -> what it rewards or penalises (the explanation and error messages quote these)
SHOT_TERMS: dict[str, str] = {
    "match": "semantic match between the sentence and the clip (a reward)",
    "tone": "well exposed, not washed out (brightness and contrast)",
    "focus": "sharp, not blurred",
    "stability": "steady camera, not shaky",
    "resolution": "no heavy upscaling, aspect close to the film's",
    "duration": "the clip covers the shot's planned length",
    "pace": "clip motion fits the style's energy",
    "scene_opening": "a scene opens on a wide shot",
    "character_visible": "a shot that names a character shows a face",
    "card": "where a clip clears the card bar, a title card (and any clip under the bar) costs "
            "up to this much (the largest per-shot cost among the clips that cleared it): a clip "
            "that matched is not replaced by a card for small faults of its looks",
}
CUT_TERMS: dict[str, str] = {
    "jump_cut": "no same-source, same-framing clips back to back",
    "tone_continuity": "brightness and colour stay close across a cut",
    "camera_continuity": "no camera move straight into the opposite move",
    "scale_jump": "no wide straight into a close-up (and back)",
    "same_scale": "no identical shot scale twice in a row",
    "character": "each character is shown by the same face throughout the film",
}
FILM_TERMS: dict[str, str] = {
    "variety": "draw on many sources: each extra clip from the same file costs",
    "reuse": "each reuse of a clip costs (when reuse_gap allows reuse at all)",
    "keep": "keep the previous cut's clip for an untouched shot (a reward)",
}
TERMS: dict[str, str] = {**SHOT_TERMS, **CUT_TERMS, **FILM_TERMS}
REWARDS = ("match", "keep")  # terms that add to the objective; every other term subtracts

LIMITS: dict[str, str] = {
    "placeholder_threshold": "the card bar, in sd above the library's scores for the sentence: a "
                             "shot whose best clip stands lower gets a title card; unset: the "
                             "library's own bar (where an unrelated sentence's best hit stands) "
                             "plus placeholder_shift",
    "placeholder_shift": "sd added to the library's own card bar (negative: fewer title cards)",
    "placeholders": "whether title cards may fill shots at all",
    "reuse_gap": "0: never use a clip twice; N >= 2: a clip may come back N shots later",
    "tempo": "planned shot lengths are multiplied by this",
    "min_shot": "shortest shot in seconds after tempo (0: no limit)",
    "max_shot": "longest shot in seconds after tempo (0: no limit)",
    "motion_target": "0 (still) .. 1 (lively): the motion the pace term wants",
    "beat_tolerance": "with --music, a cut moves at most this many seconds to land on a beat (0: off)",
}
_SECTIONS = {"shot": SHOT_TERMS, "cut": CUT_TERMS, "film": FILM_TERMS, "limits": LIMITS}
_TOP_KEYS = ("name", "description", "extends")
MAX_WEIGHT = 1000.0  # a weight reads as match score (0..1): beyond this it only breaks the solver
MAX_SHOT_SECONDS = 3600.0
MAX_BAR = 100.0  # sd: a card bar (or a shift of it) beyond this cards every shot or none


class RulesError(MontageError):
    """A rule set cannot be found or read: unknown style, bad file, unknown key, bad value."""


@dataclass(frozen=True)
class RuleSet:
    """Weights and limits for one style. ``weights`` holds every term of :data:`TERMS`."""

    name: str
    description: str = ""
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    placeholder_threshold: float | None = None  # sd; None: the library's (montage.optimize.confidence)
    placeholder_shift: float = 0.0  # sd
    placeholders: bool = True
    reuse_gap: int = 0
    tempo: float = 1.0
    min_shot: float = 0.0
    max_shot: float = 0.0
    motion_target: float = 0.5
    beat_tolerance: float = 0.25

    def weight(self, term: str) -> float:
        return float(self.weights.get(term, 0.0))

    def with_weights(self, **weights: float) -> "RuleSet":
        """A copy with some weights changed (tests and the CLI use this; unknown names fail)."""
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise RulesError(f"unknown rule term(s): {', '.join(unknown)}",
                             f"valid terms: {', '.join(TERMS)}")
        return replace(self, weights=MappingProxyType({**self.weights, **weights}))

    def with_threshold(self, threshold: float) -> "RuleSet":
        """A copy with a fixed card bar in sd (``--threshold`` overrides the style's)."""
        return replace(self, placeholder_threshold=float(threshold))

    def fingerprint(self) -> str:
        """A short stable hash of every weight and limit: equal rules, equal fingerprints."""
        data = {"weights": sorted((t, float(w)) for t, w in self.weights.items()),
                "limits": {k: getattr(self, k) for k in LIMITS}}
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def only(self, *terms: str) -> "RuleSet":
        """A copy where every weight not named is zero (e.g. ``only("match")`` for pure retrieval)."""
        return self.with_weights(**{t: (self.weight(t) if t in terms else 0.0) for t in TERMS})

    def to_dict(self) -> dict[str, Any]:
        """The rule set as plain data, in the TOML layout (saved beside outputs)."""
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        for section, terms in (("shot", SHOT_TERMS), ("cut", CUT_TERMS), ("film", FILM_TERMS)):
            data[section] = {t: self.weight(t) for t in terms}
        data["limits"] = {k: getattr(self, k) for k in LIMITS if getattr(self, k) is not None}
        return data


def list_styles() -> list[str]:
    """The preset names in ``assets/rules`` (sorted)."""
    return sorted(p.stem for p in RULES_DIR.glob("*.toml"))


def load_rules(style: str | Path | None = None) -> RuleSet:
    """A preset by name (``None``: the default), or a TOML file by path."""
    return _load(style if style is not None else DEFAULT_STYLE, seen=())


def default_rules() -> RuleSet:
    return load_rules(None)


def _load(spec: str | Path, seen: tuple[Path, ...]) -> RuleSet:
    path = _resolve(spec)
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise RulesError(f"{path}: 'extends' goes round in a circle ({chain})",
                         "make one of these files stop extending the others")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rule set ({exc.strerror})",
                         "check the path and its permissions") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: not valid TOML ({exc})", "fix the file's syntax") from None
    base = _load(data["extends"], (*seen, path)) if "extends" in data else None
    return _parse(data, path, base)


def _resolve(spec: str | Path) -> Path:
    if not isinstance(spec, (str, Path)) or not str(spec).strip() or "\0" in str(spec):
        raise RulesError(f"a style must be a name or a .toml path, not {spec!r}",
                         f"e.g. extends = \"default\"; styles: {', '.join(list_styles())}")
    text = str(spec)
    if isinstance(spec, Path) or text.endswith(".toml") or "/" in text or "\\" in text:
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # ~user that does not exist
            path = Path(text)
        if not path.is_file():
            raise RulesError(f"rule set file not found: {path}",
                             f"give an existing .toml file or a style: {', '.join(list_styles())}")
        return path.resolve()
    path = RULES_DIR / f"{text}.toml"
    if not path.is_file():
        raise RulesError(f"unknown style '{text}'",
                         f"available styles: {', '.join(list_styles())}; or give a .toml file")
    return path


def _parse(data: dict[str, Any], path: Path, base: RuleSet | None) -> RuleSet:
    for key in data:
        if key not in _SECTIONS and key not in _TOP_KEYS:
            raise RulesError(f"{path}: unknown key '{key}'",
                             f"valid: {', '.join((*_TOP_KEYS, *_SECTIONS))}")
    weights = dict(base.weights) if base else {t: 0.0 for t in TERMS}
    limits = {k: getattr(base, k) for k in LIMITS} if base else {}
    for section, known in _SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise RulesError(f"{path}: [{section}] must be a table",
                             f"write [{section}] then key = value lines")
        for key, value in table.items():
            if key not in known:
                raise RulesError(f"{path}: [{section}] has unknown key '{key}'",
                                 f"valid keys in [{section}]: {', '.join(known)}")
            if section == "limits":
                limits[key] = _limit(key, value, path)
            else:
                weights[key] = _number(f"[{section}] {key}", value, path, low=0.0,
                                       high=MAX_WEIGHT)
    if base is None:
        missing = [t for t in TERMS if t not in _given(data)]
        if missing:
            raise RulesError(f"{path}: no weight for {', '.join(missing)}",
                             "give every term a weight (0 turns a rule off), or start with "
                             "extends = \"default\"")
    if limits.get("max_shot") and limits.get("min_shot", 0.0) > limits["max_shot"]:
        raise RulesError(f"{path}: [limits] min_shot = {limits['min_shot']} is longer than "
                         f"max_shot = {limits['max_shot']}",
                         "make min_shot <= max_shot (max_shot = 0: no limit)")
    for key in ("name", "description"):
        if not isinstance(data.get(key, ""), str):
            raise RulesError(f"{path}: {key} = {data[key]!r} is not a string",
                             f'write {key} = "..." in quotes')
    name = data.get("name", path.stem if base is None else f"{base.name}+{path.stem}")
    return RuleSet(name=str(name), description=str(data.get("description", base.description if base else "")),
                   weights=MappingProxyType(weights), **limits)


def _given(data: dict[str, Any]) -> set[str]:
    return {k for s in ("shot", "cut", "film") for k in data.get(s, {})}


def _number(what: str, value: Any, path: Path, low: float | None = None,
            high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RulesError(f"{path}: {what} = {value!r} is not a number", "write a number such as 0.2")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low if low is not None else '-inf'} .. {high if high is not None else 'inf'}"
        raise RulesError(f"{path}: {what} = {value} is out of range", f"use a value in {span}")
    return float(value)


def _limit(key: str, value: Any, path: Path) -> Any:
    what = f"[limits] {key}"
    if key == "placeholders":
        if not isinstance(value, bool):
            raise RulesError(f"{path}: {what} = {value!r} is not true/false", "write true or false")
        return value
    if key == "reuse_gap":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value == 1:
            raise RulesError(f"{path}: {what} = {value!r} must be 0 (never reuse) or an integer >= 2",
                             "a clip cannot follow itself; 0 forbids reuse")
        return value
    if key == "tempo":
        return _number(what, value, path, low=0.1, high=10.0)
    if key == "motion_target":
        return _number(what, value, path, low=0.0, high=1.0)
    if key in ("min_shot", "max_shot"):
        return _number(what, value, path, low=0.0, high=MAX_SHOT_SECONDS)
    if key == "placeholder_shift":
        return _number(what, value, path, low=-MAX_BAR, high=MAX_BAR)
    if key == "placeholder_threshold":
        return _number(what, value, path, low=-MAX_BAR, high=MAX_BAR)
    if key == "beat_tolerance":
        return _number(what, value, path, low=0.0, high=2.0)
    return _number(what, value, path, low=0.0)
