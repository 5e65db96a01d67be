"""sound (floor 3): the film's voice and music, and the pacing they give the cut.

Owns: ``--narrate`` (``narrate``: a local Piper voice run as a subprocess, since Piper is
GPL-3.0 and never imported), ``--music`` (``music``: beats and downbeats with librosa), and
the glue that turns both into shot lengths and a soundtrack (``prepare``: the optimizer's
``Pacing``, then the voices and music laid on the chosen edit). May import: ``montage.film``
(the soundtrack's time line), ``montage.optimize``, ``planner``, ``retrieval``.
"""
from __future__ import annotations

from .music import BeatGrid, track_beats
from .narrate import Voice, check_voice, find_voice
from .prepare import SoundPlan, prepare_sound

__all__ = ["BeatGrid", "SoundPlan", "Voice", "check_voice", "find_voice", "prepare_sound",
           "track_beats"]
