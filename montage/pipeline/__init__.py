"""pipeline (floor 4): the one run that wires every stage, and the generation round in it.

Owns: ``options`` (one run's options, merged with the settings the project remembers),
``recut.Recutter`` (script -> plan -> candidates -> generated fills -> optimized edit ->
film and project artifacts; a recut redoes only what changed) and ``generate`` (the glue between
the optimizer's gaps and the ``generator`` package). May import: ``montage.optimize``,
``montage.film``, ``montage.sound.prepare``, ``montage.project``, and the ``planner``, ``retrieval``
and ``generator`` packages. The command line, ``watch`` and the studio all cut through here.
"""
from __future__ import annotations

from .options import FLAGS, MakeOptions, check_output, check_settings, default_project, resolve
from .changes import read_changes
from .artifacts import MakeResult
from .recut import Recutter, make_film

__all__ = ["FLAGS", "MakeOptions", "check_settings", "MakeResult", "Recutter", "check_output", "default_project",
           "make_film", "read_changes", "resolve"]
