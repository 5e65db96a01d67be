"""Show or card, on the calibrated scale: the one place raw scores become what the edit weighs.

A hit's *confidence* is how many standard deviations its score stands above the library's
scores for its sentence (:meth:`retrieval.types.QueryCalibration.confidence`), so it means the
same for every query, library and embedder. A title card is the honest choice when no hit
stands out more than the best hit of an unrelated sentence does in the same library: the *card
bar* is, by default, where the probe sentences' best hits stand (their median,
:mod:`retrieval.index.calibration`) plus ``BAR_MARGIN`` sd, moved by the style's
``placeholder_shift`` (in sd); a style's ``placeholder_threshold`` or ``--threshold`` sets the
bar in sd outright. ``bench/film_eval.py --sweep`` chose ``BAR_MARGIN`` on the tuning half of
assets/eval, counting what the films show (right, wrong, card) (docs/performance.md, "Show or
card").

The optimizer weighs a hit as ``CARD_VALUE + KAPPA * (confidence - bar)`` and a card as
``CARD_VALUE``: a hit at the bar is worth what a card is, and every sd above it ``KAPPA`` more,
whether the hit is library footage or a generated clip scored the same way. ``KAPPA`` turns sd
into the match-score units every rule weight is written in ("how much match score this rule is
worth"): the median sd of a sentence's scores over the library, measured with proxy-v4 on the
tuning half (0.078), so the default weights keep the balance they had against proxy-v4's raw
scores. ``CARD_VALUE`` is the same for every option of a shot, so it decides nothing; it only
keeps the values readable (0.5 at the bar).
"""
from __future__ import annotations

from dataclasses import dataclass

from retrieval.types import MIN_SD, CandidateSet, QueryCalibration

from montage.optimize.problem import OptimizeError
from montage.optimize.rules import RuleSet

KAPPA = 0.08  # match score per sd of a sentence's scores over the library (see the docstring)
CARD_VALUE = 0.5  # a title card's match value, and a hit's at the card bar
BAR_MARGIN = 0.0  # sd above the unrelated sentences' median best hit (bench/film_eval.py --sweep)
TIE = 1e-6  # sd: a hit this close under the bar clears it (tiny libraries sit on it exactly)


@dataclass(frozen=True)
class ShotScale:
    """One shot's calibration and card bar: its hits' raw scores as confidence and value."""

    calibration: QueryCalibration
    bar: float  # sd

    def confidence(self, raw: float) -> float:
        return self.calibration.confidence(raw)

    def value(self, raw: float) -> float:
        """The match value the optimizer weighs (see the module docstring)."""
        return CARD_VALUE + KAPPA * (self.confidence(raw) - self.bar)

    def clears(self, raw: float) -> bool:
        """Whether a hit of this raw score stands at or above the card bar."""
        return self.confidence(raw) >= self.bar - TIE

    @property
    def raw_bar(self) -> float:
        """The raw score at the card bar (what generation and recuts compare raw scores with)."""
        if self.calibration.sd < MIN_SD:  # nothing stands out: every score is at 0 sd
            return float("-inf") if 0.0 >= self.bar - TIE else float("inf")
        return self.calibration.raw(self.bar - TIE)


def card_bar(calibration: QueryCalibration, rules: RuleSet) -> float:
    """The card bar in sd: the rule set's fixed one, else the library's own (see module)."""
    if rules.placeholder_threshold is not None:
        return float(rules.placeholder_threshold)
    return calibration.unrelated + BAR_MARGIN + rules.placeholder_shift


def shot_scales(candidates: CandidateSet, rules: RuleSet) -> dict[str, ShotScale | None]:
    """Each shot's scale (None for a shot with neither hits nor calibration: an empty
    library); an OptimizeError for hits that cannot be calibrated."""
    out: dict[str, ShotScale | None] = {}
    for c in candidates.shots:
        if c.calibration is None:
            if c.hits:
                raise OptimizeError(
                    f"shot {c.shot_id}'s candidates carry no calibration of their scores "
                    f"(candidates.json of an older montage?)",
                    "search again: a new `montage make` after `montage index` re-searches")
            out[c.shot_id] = None
            continue
        out[c.shot_id] = ShotScale(c.calibration, card_bar(c.calibration, rules))
    return out


def raw_bars(candidates: CandidateSet, rules: RuleSet) -> dict[str, float]:
    """Each shot's card bar as a raw score of its query (a shot without a scale: +inf, no
    footage clears it)."""
    return {sid: (s.raw_bar if s is not None else float("inf"))
            for sid, s in shot_scales(candidates, rules).items()}
