"""The optimizer's answer: which media fills each planned shot, and which frames of it.

From here on time is integer frames at the film's rate (a ``Fraction``); ``montage.timeline``
is the one place that turns these into OpenTimelineIO ``RationalTime``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

SOURCES = ("library", "placeholder", "generated")
RUNNER_UP_CARD = "<title card>"  # EditDecision.runner_up when the runner-up is a placeholder


@dataclass(frozen=True)
class EditDecision:
    """One clip of the film.

    ``media`` is an absolute path for library footage and ``""`` for a placeholder title card
    (the renderer draws the card from ``text``). ``source_in`` counts film-rate frames from the
    start of the media file; stills and cards use 0.
    """

    shot_id: str
    text: str
    source: str  # one of SOURCES
    kind: str  # "video" | "still" | "card"
    media: str
    source_in: int  # frames at the film rate
    frames: int  # length in frames at the film rate (> 0)
    score: float  # the match value that chose it (montage.optimize.confidence; a card's for a card)
    library_shot: str = ""  # LibraryShot.id, "" for a placeholder
    reason: str = ""  # one human sentence: why this clip
    # The rule terms behind the choice, in match-score units: a positive cost is a penalty,
    # rewards (match, keep) appear as negative costs; the cut terms are those of the cut INTO
    # this clip. The film's objective is minus the sum of every decision's costs.
    costs: tuple[tuple[str, float], ...] = ()
    bends: tuple[str, ...] = ()  # rules this clip bends (a cost of more than half the rule's weight)
    runner_up: str = ""  # the best other option (a LibraryShot.id, or RUNNER_UP_CARD); "" if none
    decided_by: str = ""  # which terms decided between the choice and the runner-up
    # for a generated clip: how to make it again (backend, model, seed, prompt, references)
    provenance: tuple[tuple[str, str], ...] = ()
    # sd above the library for this sentence: the clip's, or for a card its best hit's
    # (None: no hit, or an edit made before calibration); and the card bar it was held to
    confidence: float | None = None
    bar: float | None = None


@dataclass(frozen=True)
class EditDecisionList:
    """The whole edit, in film order."""

    rate: Fraction
    width: int
    height: int
    decisions: tuple[EditDecision, ...]

    @property
    def frames(self) -> int:
        return sum(d.frames for d in self.decisions)

    @property
    def seconds(self) -> float:
        return float(self.frames / self.rate)

    def starts(self) -> list[int]:
        """The film frame at which each decision starts."""
        out, t = [], 0
        for d in self.decisions:
            out.append(t)
            t += d.frames
        return out
