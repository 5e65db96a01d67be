"""models (floor 1): the model catalogue and the models installed on this machine.

Owns: the catalogue as data (``catalogue.toml`` shipped here, plus the user's own file, read
by ``entries``), where models live and which are installed, from the disk alone (``store``:
the hub cache, the pull records, folders placed by hand), downloading and removing them
(``install``, through ``hub``: the one module that imports huggingface_hub) and the rule
``auto`` follows to take an installed model (``choose``). May import: ``planner`` and huggingface_hub
(in ``hub`` only). Loading and running a model is its user's work: open_clip in
``retrieval.embed.clip``, diffusers in ``generator.diffusers_backend``.
A new model is an entry in ``catalogue.toml`` (or the user file); a new loader also needs its
user to know it.
"""
from __future__ import annotations

from .entries import KINDS, USER_FILE_ENV, Entry, FileSpec, catalogue, entry, user_file
from .choose import Pick, best_installed, gpu_driver_present, installed_not_taken, suggestion
from .install import PullPlan, manual_hint, plan_pull, pull, remove
from .store import (HOME_ENV, Installed, InstalledFile, Status, endpoint, hub_cache, installed,
                    manual_folder, models_home, offline, status)

__all__ = [
    "Entry", "FileSpec", "HOME_ENV", "Installed", "InstalledFile", "KINDS", "Pick", "PullPlan",
    "Status", "USER_FILE_ENV", "best_installed", "catalogue", "endpoint", "entry",
    "gpu_driver_present", "hub_cache", "installed", "installed_not_taken", "manual_folder",
    "manual_hint", "models_home", "offline", "plan_pull", "pull", "remove", "status",
    "suggestion", "user_file",
]
