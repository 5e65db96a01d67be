"""The planner's output: what each shot must show, who is in it, and how long it lasts.

Plain frozen data, written to and read back from ``plan.json`` unchanged (round trip).
Durations here are float seconds (a wish); frames start at the optimizer.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedShot:
    """One shot the film needs.

    ``id`` is stable across re-plans of an edited script: it depends on the shot's own text
    (and, for repeated identical text, on its occurrence number), never on its position.
    """

    id: str
    scene: int  # 0-based scene number (paragraphs and INT./EXT. headings start scenes)
    text: str  # the script text this shot illustrates (a sentence or a clause)
    query: str  # the visible words: nouns, verbs, adjectives, places, lemmatised
    characters: tuple[str, ...]  # PERSON names in it, pronouns resolved to the last one named
    duration: float  # target length in seconds, from reading pace, clamped
    line: int  # 1-based line of the script where the text starts


@dataclass(frozen=True)
class ShotPlan:
    """All shots of a script, in order, plus where the script came from."""

    source: str  # the script's path, or "<text>" when planned from a string
    shots: tuple[PlannedShot, ...]
    scene_titles: tuple[str, ...] = ()  # one per scene: its heading, or "" for a plain paragraph

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.shots)

    def to_json(self) -> str:
        data = {
            "version": PLAN_VERSION,
            "source": self.source,
            "scene_titles": list(self.scene_titles),
            "shots": [asdict(s) for s in self.shots],
        }
        return json.dumps(data, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "ShotPlan":
        data = json.loads(text)
        shots = tuple(
            PlannedShot(**{**s, "characters": tuple(s["characters"])}) for s in data["shots"]
        )
        return cls(source=data["source"], shots=shots, scene_titles=tuple(data["scene_titles"]))

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "ShotPlan":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
