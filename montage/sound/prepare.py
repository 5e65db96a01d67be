"""The glue between the sound options (``--narrate``, ``--voice``, ``--music``) and a cut.

Before solving, :func:`prepare_sound` speaks the sentences (``montage.sound.narrate``), gives each
spoken shot its speech's length plus a breath in place of the planner's reading-pace estimate,
and tracks the music's beats (``montage.sound.music``); its :class:`SoundPlan` hands the optimizer a
:class:`~montage.optimize.Pacing` and, once the edit is chosen, lays the voices and the music
on the film's time line (:meth:`SoundPlan.soundtrack`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from planner.shots import ShotPlan

from montage.film import BREATH, LEAD, Soundtrack, Speech, place
from montage.optimize import EditDecisionList, Pacing


@dataclass(frozen=True)
class SoundPlan:
    """What the sound options decided for one cut (nothing, when none was given)."""

    plan: ShotPlan  # the plan, its spoken shots timed by their speech
    speech: Mapping[str, Speech] = field(default_factory=lambda: MappingProxyType({}))
    music: Path | None = None
    music_seconds: float = 0.0
    beats: tuple[float, ...] = ()  # over the music's own length (looped when paced)
    downbeats: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.speech) or self.music is not None

    def pacing(self) -> Pacing | None:
        """Speech floors and the beat grid looped over the planned film (plus a margin, since
        cuts may run later than planned)."""
        if not self.active:
            return None
        floors = {sid: s.floor() for sid, s in self.speech.items()}
        beats: list[float] = []
        downs: list[float] = []
        if self.music is not None and self.music_seconds > 0:
            length = 2 * self.plan.duration + 60
            start = 0.0
            while start < length:
                beats += [start + b for b in self.beats]
                downs += [start + b for b in self.downbeats]
                start += self.music_seconds
        return Pacing(floors=MappingProxyType(floors), beats=tuple(beats), downbeats=tuple(downs))

    def soundtrack(self, edl: EditDecisionList) -> Soundtrack | None:
        """The voices and the music laid on the chosen edit; None without sound options."""
        if not self.active:
            return None
        return place(edl, dict(self.speech), self.music, self.music_seconds)


def prepare_sound(plan: ShotPlan, *, narrate: bool, voice: Path | None, music: Path | None,
                  cache: Path, rate: Fraction,
                  say: Callable[[str], None] | None = None) -> SoundPlan:
    """Speak and time the plan, track the music's beats (see the module doc). Bad files fail
    here, before any footage is searched."""
    speech: dict[str, Speech] = {}
    if narrate or voice is not None:
        from .narrate import find_voice, narrate as speak

        chosen = find_voice(voice)
        speech = speak(plan, chosen, cache / "narration", rate, say=say)
        shots = tuple(replace(s, duration=round(LEAD + speech[s.id].speech + BREATH, 2))
                      if s.id in speech else s for s in plan.shots)
        plan = replace(plan, shots=shots)
    if music is None:
        return SoundPlan(plan, MappingProxyType(speech))
    from .music import track_beats

    grid = track_beats(music, cache=cache / "music")
    if say is not None:
        say(f"music: {Path(music).name}, {grid.seconds:.1f} s, {grid.tempo:.1f} bpm, "
            f"{len(grid.beats)} beats" + ("" if len(grid.beats) >= 2 else
                                          " (no steady beat: cuts keep their planned times)"))
    return SoundPlan(plan, MappingProxyType(speech), Path(music), grid.seconds, grid.beats,
                     grid.downbeats)
