"""A project's settings: everything that decides its cut, remembered in ``state.json``.

The first cut writes them; every later run (``montage make`` again, ``watch``, ``studio DIR``,
``export``) reads them, so a recut made without flags is cut the way the project was made. A
flag given on the command line (or a change in the studio) overrides one setting, and the
history says what changed.

Rules for the stored form (``state.json`` ``"settings"``, and each cut's
``history/NNNN/settings.json``):

- ``version`` is :data:`SETTINGS_VERSION`. A new field with a default does not change it: a
  field missing from an older project takes its default, and the run says so once ("assumed").
  The version goes up only when a field changes meaning; older versions are migrated here.
- A field this montage does not know (written by a newer one) is an error naming it: cutting
  without it would silently cut another film.
- Files (cast, voice, music, a rule file given as the style) are kept as their absolute path
  and their path relative to the project folder, so a project moved together with its files
  still finds them; a file found at neither is a clear error when a run needs it.
- The embedder and generator are kept as the spec that ran (``proxy``, ``builtin``) and the
  model it resolved to (``embedder_model``, ``generator_model``: the index's embedder name, the
  generator's weights or model), so a later default cannot switch an existing project's models.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from pathlib import Path

from planner.errors import ProjectError
from generator import FILL_TRIES

SETTINGS_VERSION = 2  # 2: threshold in sd above the library's scores (1: a raw score)
_RAW_THRESHOLD = ("threshold auto (the {} kept was a raw score; the card bar is now in sd above "
                  "the library's scores for a sentence: give --threshold again in sd to fix one)")
PATH_FIELDS = ("cast", "voice", "music")


class SettingsError(ProjectError):
    """The project's settings cannot be read back, or name a file that is gone."""


@dataclass(frozen=True)
class Settings:
    """What decides the cut (not how a run reports or waits: see ``MakeOptions``)."""

    embedder: str = "proxy"  # the embedder spec the library is indexed with
    embedder_model: str = ""  # what it resolved to (the index's embedder name), once cut
    generator: str = "off"  # "builtin", "builtin:WEIGHTS", "diffusers:MODEL" or "off"
    generator_model: str = ""  # the weights file or model it resolved to, once cut
    cast: Path | None = None  # cast.toml: names, descriptions, reference images, seeds
    narrate: bool = False  # speak each sentence (Piper); shots last as long as their speech
    voice: Path | None = None  # a Piper voice instead of the bundled one (implies narrate)
    music: Path | None = None  # music under the film; cuts land on its beats
    style: str = "default"  # a preset in assets/rules/ or a path to a TOML rule set
    threshold: float | None = None  # the card bar in sd (None: the library's own, by style)
    top: int = 10  # candidates kept per shot
    width: int = 1280
    height: int = 720
    rate: Fraction = Fraction(25)
    seed: int = 0  # added to every generated shot's seed (0: the shot's own)
    generate: frozenset[str] = frozenset()  # shots generated whatever the library has
    fill_tries: int = FILL_TRIES  # fills each generator makes per generated shot (best kept)

    # -- reading and writing --------------------------------------------------------------
    def to_dict(self, project: Path) -> dict:
        """The JSON form; files as absolute and project-relative paths."""
        out: dict = {"version": SETTINGS_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in PATH_FIELDS or (f.name == "style" and is_style_file(value)):
                value = _file_ref(Path(value), project) if value is not None else None
            elif f.name == "rate":
                value = str(value)
            elif f.name == "generate":
                value = sorted(value)
            out[f.name] = value
        return out

    def values(self) -> dict[str, str]:
        """Each setting as a person reads it (the studio's panel, the history's changes)."""
        return {f.name: show_value(getattr(self, f.name)) for f in fields(self)}

    def changes_from(self, old: "Settings") -> list[str]:
        """``name old -> new`` for each setting that differs from ``old`` (resolved models
        are left out: they change with the spec, or with the index, which says so itself)."""
        mine, theirs = self.values(), old.values()
        return [f"{k} {theirs[k]} -> {mine[k]}" for k in mine
                if k not in ("embedder_model", "generator_model") and mine[k] != theirs[k]]

    def missing_files(self) -> list[tuple[str, Path]]:
        """The remembered files that are not there (setting name, path)."""
        out = []
        for name in PATH_FIELDS:
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                out.append((name, Path(path)))
        if is_style_file(self.style) and not Path(self.style).is_file():
            out.append(("style", Path(self.style)))
        return out


NAMES = tuple(f.name for f in fields(Settings))


def is_style_file(style: object) -> bool:
    """A style that names a TOML file (not a preset)."""
    return isinstance(style, (str, Path)) and (str(style).endswith(".toml") or os.sep in str(style))


def show_value(value: object) -> str:
    """A setting's value as a person reads it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) or "none"
    return str(value)


def _file_ref(path: Path, project: Path) -> dict:
    path = Path(path).absolute()
    try:
        relative = os.path.relpath(path, Path(project).absolute())
    except ValueError:  # another drive (Windows)
        relative = None
    return {"path": str(path), "from_project": relative}


def _find_file(ref: object, project: Path, name: str) -> Path:
    """A stored file: where it was, else where it is relative to the (moved) project folder;
    when neither exists, where it was (the run that needs it says it is gone)."""
    if isinstance(ref, str):
        return Path(ref)
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise SettingsError(f"{project / 'state.json'}: settings field {name!r} must be a file "
                            f"reference {{\"path\": ..., \"from_project\": ...}}, got {ref!r}",
                            _HINT_DAMAGED)
    where = Path(ref["path"])
    moved = ref.get("from_project")
    if not where.exists() and isinstance(moved, str) and (Path(project) / moved).exists():
        return Path(os.path.normpath(Path(project).absolute() / moved))
    return where


_HINT_DAMAGED = ("fix the value in state.json, or pass the setting again on the command line "
                 "(montage make ... --FLAG VALUE) so it is written anew")


def settings_from_dict(data: object, project: Path) -> tuple[Settings, list[str]]:
    """Settings from their JSON form, and the fields that were missing (assumed defaults).
    Raises SettingsError for a newer version, an unknown field or a value of the wrong type."""
    where = Path(project) / "state.json"
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: settings must be a JSON object, got {type(data).__name__}",
                            _HINT_DAMAGED)
    version = data.get("version", SETTINGS_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > SETTINGS_VERSION:
        raise SettingsError(f"{where}: settings version {version!r} is newer than this montage "
                            f"reads ({SETTINGS_VERSION})",
                            "upgrade montage, or cut this script into a new --project folder")
    unknown = sorted(set(data) - set(NAMES) - {"version"})
    if unknown:
        raise SettingsError(f"{where}: settings {', '.join(unknown)} are not known to this "
                            "version of montage (written by a newer one?)",
                            "upgrade montage; or remove them from state.json to cut without them")
    default = Settings()
    values: dict = {}
    for f in fields(Settings):
        if f.name not in data:
            continue
        value = data[f.name]
        try:
            values[f.name] = _parse(f.name, value, getattr(default, f.name), project)
        except (TypeError, ValueError, ZeroDivisionError):
            raise SettingsError(f"{where}: settings field {f.name!r} has a bad value {value!r}",
                                _HINT_DAMAGED) from None
    assumed = [f"{n} {show_value(getattr(default, n))}" for n in NAMES
               if n not in data and n not in ("embedder_model", "generator_model")]
    if version < 2 and values.get("threshold") is not None:  # a raw score means nothing now
        assumed.append(_RAW_THRESHOLD.format(values.pop("threshold")))
    return replace(default, **values), assumed


EDITABLE = tuple(n for n in NAMES if n not in ("embedder_model", "generator_model"))


def parse_setting(name: str, value: object, project: Path) -> object:
    """One setting from its JSON form (as stored, or as the studio sends it); a SettingsError
    names a setting that does not exist or a value it cannot take."""
    if name not in EDITABLE:
        raise SettingsError(f"there is no setting {name!r}", "one of " + ", ".join(EDITABLE))
    if name in PATH_FIELDS and isinstance(value, str):
        value = value.strip() or None
        if value is not None and not Path(value).expanduser().is_file():
            raise SettingsError(f"{name}: no such file: {value}",
                                "give the full path of a file on the computer the studio runs on")
        return Path(value).expanduser().absolute() if value is not None else None
    try:
        return _parse(name, value, getattr(Settings(), name), project)
    except (TypeError, ValueError, ZeroDivisionError):
        raise SettingsError(f"{name}: {value!r} is not a value it can take",
                            _KINDS.get(name, "see montage make --help")) from None


_KINDS = {"threshold": "a number of sd (or null: the library's own bar)", "top": "a whole number, 1 or more",
          "fill_tries": "a whole number, 1 or more",
          "width": "an even whole number, 16 or more", "height": "an even whole number, 16 or more",
          "rate": "frames per second, e.g. 25 or 30000/1001", "seed": "a whole number",
          "narrate": "true or false", "generate": "a list of shot ids"}


def _parse(name: str, value: object, default: object, project: Path) -> object:
    if name in PATH_FIELDS:
        return None if value is None else _find_file(value, project, name)
    if name == "style":
        return str(_find_file(value, project, name)) if isinstance(value, dict) else _text(value)
    if name == "rate":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        rate = Fraction(_text(value))
        if not 1 <= rate <= 120:
            raise ValueError(value)
        return rate
    if name == "threshold":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(value)
        return float(value)
    if name == "generate":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(value)
        return frozenset(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        if name in ("width", "height") and (value < 16 or value % 2):
            raise ValueError(value)
        if name in ("top", "fill_tries") and value < 1:
            raise ValueError(value)
        return value
    return _text(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


# -- projects cut before settings were kept ----------------------------------------------------
def legacy_settings(key: str, project: Path) -> tuple[Settings, list[str], list[str]]:
    """What the cache key of a project made before settings were kept (state.json version 1:
    ``RULES|threshold|WxH@rate|topN|generator|[generate]|cast[|narrate:on:voice|music:path]``)
    still tells: the settings it gives, the fields it gave (read), and those assumed."""
    parts = key.split("|") if key else []
    found: dict = {}
    try:
        rules = json.loads(parts[0])
        if isinstance(rules, dict) and isinstance(rules.get("name"), str):
            found["style"] = rules["name"]
    except (IndexError, ValueError):
        pass
    fields_ = {"threshold": 1, "size": 2, "top": 3, "generator": 4, "generate": 5, "cast": 6}
    for name, at in fields_.items():
        if len(parts) <= at:
            continue
        text = parts[at]
        try:
            if name == "threshold":  # a raw score then: the card bar is in sd now
                found["threshold"] = None if text == "None" else float(text)
            elif name == "size":
                size, rate = text.split("@")
                w, h = size.split("x")
                found.update(width=int(w), height=int(h), rate=Fraction(rate))
            elif name == "top" and text.startswith("top"):
                found["top"] = int(text[3:])
            elif name == "generator" and text:
                found["generator"] = text
            elif name == "generate":
                found["generate"] = frozenset(json.loads(text.replace("'", '"')))
            elif name == "cast":  # a relative one: from here, the best guess
                found["cast"] = None if text == "None" else Path(text).absolute()
        except (ValueError, TypeError):
            continue
    for part in parts[7:]:
        if part.startswith("narrate:"):
            _, on, voice = part.split(":", 2)
            found["narrate"] = on == "True"
            if voice != "None":
                found["voice"] = Path(voice).absolute()
        elif part.startswith("music:") and part[6:] != "None":
            found["music"] = Path(part[6:]).absolute()
    if len(parts) > 6:  # the key named the sound only when some was on; seeds came from shots
        found.setdefault("narrate", False)
        found.setdefault("voice", None)
        found.setdefault("music", None)
        found.setdefault("seed", 0)
    raw = found.get("threshold")
    if raw is not None:  # a raw score: not read, the library's own bar is assumed
        del found["threshold"]
    settings = replace(Settings(), **found)
    assumed = [f"{n} {show_value(getattr(settings, n))}" for n in NAMES
               if n not in found and n not in ("embedder", "embedder_model", "generator_model")
               and not (n == "threshold" and raw is not None)]
    if raw is not None:
        assumed.append(_RAW_THRESHOLD.format(raw))
    return settings, sorted(found), assumed


def settings_value(settings: Settings, name: str, project: Path) -> object:
    """One setting in its JSON form, as the studio sends it back (files as plain paths)."""
    value = settings.to_dict(project)[name]
    return value["path"] if isinstance(value, dict) else value


def settings_json(settings: Settings, project: Path) -> str:
    return json.dumps(settings.to_dict(project), indent=2)


def same_settings(a: Settings, b: Settings) -> bool:
    """Equal in everything that decides the cut (the resolved models only record)."""
    return dataclasses.replace(a, embedder_model="", generator_model="") == \
        dataclasses.replace(b, embedder_model="", generator_model="")


__all__ = ["EDITABLE", "NAMES", "PATH_FIELDS", "parse_setting", "settings_value", "show_value", "SETTINGS_VERSION", "Settings", "SettingsError",
           "is_style_file", "legacy_settings", "same_settings", "settings_from_dict",
           "settings_json"]
