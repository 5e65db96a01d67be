"""project (floor 3): the project folder's memory.

Owns: its state (``state.json``) and the settings that decide its cut (``settings``), pins and bans (``project.toml``), and every cut kept in
``history/`` (``versions``: list, compare, revert, explain); one writer at a time (``lock``); a
cut committed by ``state.json`` and then published (``publish``). May import:
``montage.optimize``, ``montage.film``, ``planner``, ``retrieval``, ``generator``.
"""
from __future__ import annotations

from montage.project.lock import lock_holder, project_lock
from montage.project.publish import commit_cut, settle, staged_film
from montage.project.settings import (EDITABLE, NAMES, SETTINGS_VERSION, Settings,
                                      SettingsError, is_style_file, parse_setting, same_settings,
                                      settings_json, settings_value, show_value)
from montage.project.state import (RENDERED, SETTINGS_FILE, Choices, CutInfo, DamagedState, ProjectState,
                                   copy_atomic, cut_dir, cut_settings, disk_full_is_an_error, history, last_cut, load_choices, load_state,
                                   rebuild_state, record_cut, save_choices, save_state,
                                   write_atomic)
from montage.project.versions import diff_text, explain_text, history_text, revert

__all__ = [
    "EDITABLE", "NAMES", "RENDERED", "parse_setting", "settings_value", "show_value", "SETTINGS_FILE", "SETTINGS_VERSION", "Settings", "SettingsError", "cut_settings",
    "is_style_file", "same_settings", "settings_json",
    "Choices", "CutInfo", "DamagedState", "ProjectState", "commit_cut", "copy_atomic", "cut_dir",
    "diff_text", "disk_full_is_an_error", "explain_text", "history", "history_text", "last_cut", "load_choices",
    "load_state", "lock_holder", "project_lock", "rebuild_state", "record_cut", "revert",
    "settle", "staged_film",
    "save_choices", "save_state", "write_atomic",
]
