"""optimize (floor 1): the rule engine: choose and trim one clip per planned shot under
cinematography rules.

Owns: ``rules`` (presets in ``assets/rules/*.toml``), ``costs`` (what each rule measures),
``confidence`` (raw scores on the calibrated scale: the card bar and match values),
``problem`` / ``instance`` (the options and their costs), ``heuristic`` / ``lagrange`` (a DP and
Lagrangian warm start and bound), ``solver`` (CP-SAT), ``explain`` (why each clip), ``edl`` (the
decision list handed to :mod:`montage.film`), ``optimizer`` (the one entry point), ``pacing``.
May import: ``planner``, ``retrieval``, ``generator`` (their data types); no other room.
A new rule: its cost in ``costs``, its term in ``rules``, its weight in ``assets/rules/default.toml``.
"""
from __future__ import annotations

from montage.optimize.edl import RUNNER_UP_CARD, SOURCES, EditDecision, EditDecisionList
from montage.optimize.confidence import KAPPA, ShotScale, card_bar, raw_bars, shot_scales
from montage.optimize.explain import confidence_text, edl_text
from montage.optimize.optimizer import Solution, optimize
from montage.optimize.pacing import Pacing
from montage.optimize.problem import (EDGE_FRAMES, Kept, OptimizeError, frames_for, shot_options,
                                      usable_span)
from montage.optimize.rules import (REWARDS, TERMS, RuleSet, RulesError, default_rules,
                                    list_styles, load_rules)

__all__ = [
    "EDGE_FRAMES", "EditDecision", "EditDecisionList", "KAPPA", "Kept", "OptimizeError", "Pacing",
    "REWARDS", "RUNNER_UP_CARD", "RuleSet", "RulesError", "SOURCES", "ShotScale", "Solution",
    "TERMS", "card_bar", "confidence_text", "default_rules", "edl_text", "frames_for",
    "list_styles", "load_rules", "optimize", "raw_bars", "shot_options", "shot_scales",
    "usable_span",
]
