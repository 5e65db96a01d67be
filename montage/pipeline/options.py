"""One run's options, and how they meet the settings a project remembers.

:class:`MakeOptions` is what one ``montage make`` is asked: the settings that decide the cut
(the fields of :class:`montage.project.Settings`) and how to run (progress, contact sheet,
waiting for another writer). On a project that already holds a cut, only the settings the run
names (``given``: the command line's flags, a change in the studio) replace the remembered
ones; :func:`resolve` merges them and says what changed, which the history records.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from planner.errors import ProjectError
from generator import FILL_TRIES, OFFLINE

from montage.project import NAMES, Settings, SettingsError, is_style_file

# a flag for each setting (what an error tells the user to pass)
FLAGS = {"embedder": "--embedder", "generator": "--generator", "cast": "--cast",
         "narrate": "--narrate/--no-narrate", "voice": "--voice", "music": "--music",
         "style": "--style", "threshold": "--threshold", "top": "--top", "width": "--size",
         "height": "--size", "rate": "--fps", "seed": "--seed", "generate": "--generate",
         "fill_tries": "--fill-tries"}


@dataclass(frozen=True)
class MakeOptions:
    """Everything a user can set for one `montage make`."""

    embedder: str = "auto"  # auto: the best installed (montage.pipeline.choose); a project keeps its own
    style: str = "default"  # a preset in assets/rules/ or a path to a TOML rule set
    top: int = 10
    threshold: float | None = None  # a fixed card bar in sd, instead of the library's (+ style)
    width: int = 1280
    height: int = 720
    rate: Fraction = Fraction(25)
    progress: bool = True
    contact_sheet: bool = True
    generator: str = "auto"  # "auto", a pulled model, "standin", "builtin[:WEIGHTS]",
    # "diffusers:MODEL", several comma-separated (the measured score picks a fill), or "off"
    offline_generator: str = OFFLINE  # what auto takes with no usable diffusion model installed
    generate: frozenset[str] = frozenset()  # shot ids to generate whatever the library has
    fill_tries: int = FILL_TRIES  # fills each generator makes per generated shot (the best is kept)
    cast: Path | None = None  # cast.toml: names, descriptions, reference images, seeds
    wait: float = 0.0  # seconds to wait for another writer of the project (0: fail at once)
    narrate: bool = False  # speak each shot's sentence (Piper); a shot lasts as long as its speech
    voice: Path | None = None  # a Piper voice (.onnx) instead of the bundled one (implies narrate)
    music: Path | None = None  # music under the film; cuts land on its beats
    seed: int = 0  # added to each generated shot's seed (0: the shot's own)
    # the settings this run names; None: all of them (the options of an API caller are the
    # project's settings). The command line names only the flags the user typed, so a recut
    # without flags keeps what the project remembers.
    given: frozenset[str] | None = None
    # what the project's settings say (resolved models), kept through a run
    embedder_model: str = ""
    generator_model: str = ""

    def settings(self) -> Settings:
        """The settings part of these options."""
        return Settings(**{name: _absolute(name, getattr(self, name)) for name in NAMES})

    def with_settings(self, settings: Settings) -> "MakeOptions":
        """These options (how to run) with ``settings`` (what to cut), all of them given."""
        return replace(self, given=None, **{name: getattr(settings, name) for name in NAMES})


def _absolute(name: str, value: object) -> object:
    """Files are remembered by absolute path (a recut may run from another folder)."""
    if name in ("cast", "voice", "music") and value is not None:
        return Path(value).absolute()
    if name == "style" and is_style_file(value):
        return str(Path(value).absolute())
    return value


def check_settings(values: dict) -> None:
    """Fail now (not in the middle of a recut) for a style, generator or embedder that does
    not exist; building each is cheap (no model is loaded)."""
    if "style" in values:
        from montage.optimize import load_rules

        load_rules(values["style"])
    if values.get("generator") not in (None, "off"):
        from generator.factory import make_generators

        make_generators(values["generator"])
    if "embedder" in values:
        from retrieval.embed import make_embedder

        make_embedder(values["embedder"])


def resolve(options: MakeOptions, stored: Settings | None) -> tuple[MakeOptions, list[str]]:
    """The options of a run on a project that remembers ``stored`` (None: a new project, or one
    whose settings are unknown): the remembered settings with this run's own on top; and what
    changed from the remembered ones (``name old -> new``), for the history.

    A remembered file that is gone is an error (unless this run names that setting anew).
    A changed embedder or generator forgets the model the old one resolved to."""
    mine = options.settings()
    if stored is None:
        return options.with_settings(mine), []
    names = set(NAMES) if options.given is None else set(options.given) & set(NAMES)
    names -= {"embedder_model", "generator_model"}
    merged = replace(stored, **{name: getattr(mine, name) for name in names})
    merged = replace(merged, **{name: _absolute(name, getattr(merged, name)) for name in NAMES})
    if merged.embedder != stored.embedder:
        merged = replace(merged, embedder_model="")
    if merged.generator != stored.generator:
        merged = replace(merged, generator_model="")
    for name, path in merged.missing_files():
        if name not in names:
            raise SettingsError(
                f"the project's {name} file is gone: {path}",
                f"put it back (or move the project back beside it), or pass {FLAGS[name]} "
                f"FILE to use another (an empty value: none); the change is recorded in the "
                f"project's history")
    return options.with_settings(merged), merged.changes_from(stored)


def default_project(out: Path) -> Path:
    """The project folder that goes with a film: `film.mp4` -> `film.montage/` beside it."""
    return out.with_name(out.stem + ".montage")


def check_output(out: Path, project: Path, library: Path) -> None:
    """Fail before any work if the film or project cannot be written, or would touch the library."""
    if out.suffix.lower() != ".mp4":
        raise ProjectError(f"output must be an .mp4 file: {out}", "pass --out NAME.mp4")
    lib = library.resolve()
    for target in (out.resolve(), project.resolve()):
        if target == lib or lib in target.parents:
            raise ProjectError(f"refusing to write inside the footage library: {target}",
                               "choose --out/--project outside the library; sources are never modified")
    if out.is_dir():
        raise ProjectError(f"output path is a folder: {out}", "pass a file name ending in .mp4")
    for folder in (out.parent, project):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create folder {folder}: {exc.strerror}",
                               "choose a writable --out / --project") from None
        probe = folder / f".montage-write-test-{id(folder)}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            raise ProjectError(f"folder is not writable: {folder}",
                               "choose a writable --out / --project") from None


__all__ = ["FLAGS", "MakeOptions", "check_output", "check_settings", "default_project", "resolve"]
