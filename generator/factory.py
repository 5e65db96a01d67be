"""Build a generator from the one-word spec a user types after --generator.

Specs are data, listed in SPECS, so an unknown one is answered with the list (never a registry
that depends on import order). A catalogue image or video model (``retrieval.models``, e.g.
``lcm-dreamshaper-v7``) is a spec too, loaded from where ``montage models pull`` put it, with
the settings its entry gives and, where one is installed, the identity adapter that fits it.
``auto`` is resolved by :func:`resolve_auto`, the one rule for the default generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generator.errors import GeneratorModelError
from generator.types import Generator

SPECS = (
    ("standin", "a previs stand-in composed from a library frame and the cast's photos (offline)"),
    ("builtin", "the project's small diffusion transformer with the shipped weights"),
    ("builtin:WEIGHTS", "the same model with weights from `montage generator train`"),
    ("diffusers:MODEL", "a diffusers pipeline folder or hub id (text-to-image or text-to-video)"),
    ("diffusers:T2I+I2V", "text-to-image, then an image-to-video pipeline"),
    ("MODEL", "a pulled catalogue model (montage models list), e.g. lcm-dreamshaper-v7"),
    ("auto", "the best installed diffusion model that runs here, else the offline fill"),
    ("off", "no generation: shots without footage stay missing"),
)
GENERATOR_KINDS = ("video", "image")  # auto prefers by catalogue rank (video models rank higher)
# What `auto` falls back to with no usable diffusion model installed: the stand-in
# (generator.standin), which composes a fill from the library's own frames (a person cut out
# and set on a clear background), so it reads on anyone's footage, and it wins a shot only where
# its measured score beats the footage and the card. Not the builtin model: its shipped weights
# learnt the demo library only, so on other footage its fills are blurs. (The demo passes
# "standin,builtin": its library is what those weights learnt.)
OFFLINE = "standin"
DESCRIBE = {"off": "off (title cards for shots the library lacks)",
            "standin": "standin (fills made from the library's own frames, measured like footage)",
            "builtin": "builtin (the small model trained on the demo library)",
            "standin,builtin": "standin,builtin (stand-ins and the demo's small model; the "
                               "measured score picks)"}
SEVERAL = "several comma-separated (e.g. standin,builtin): each makes fills, the measured score picks"


def available() -> str:
    return ", ".join(name for name, _ in SPECS) + "; or " + SEVERAL


def make_generators(spec: str) -> tuple[Generator, ...]:
    """The generators of a spec that may name several, comma-separated ('standin,builtin'):
    each makes its fills and the measured score chooses among them (none for 'off')."""
    parts = [p.strip() for p in (spec or "").split(",")]
    if len(parts) > 1 and not all(parts):
        raise GeneratorModelError(f"generator {spec!r}: an empty name between commas",
                                  "write e.g. --generator standin,builtin")
    made = [make_generator(p) for p in parts]
    if len(made) > 1 and any(g is None for g in made):
        raise GeneratorModelError(f"generator {spec!r}: 'off' cannot be combined with others",
                                  "write --generator off alone")
    return tuple(g for g in made if g is not None)


@dataclass(frozen=True)
class GeneratorChoice:
    spec: str  # what make_generator takes
    line: str  # e.g. "generation: off (title cards ...); `montage models pull ...` for ..."
    auto: bool = False


def resolve_auto(offline: str = OFFLINE) -> GeneratorChoice:
    """``--generator auto``: the installed image or video model that runs here, with a licence
    that allows any use, the best-ranked first (the catalogue's rule, ``retrieval.models``);
    else ``offline``. Reads the disk only (no network)."""
    from retrieval.embed import cuda_usable
    from retrieval.models import (best_installed, gpu_driver_present, installed_not_taken,
                                  suggestion)

    pick = best_installed(GENERATOR_KINDS, cuda_usable)
    skipped = [e.name for e in installed_not_taken(GENERATOR_KINDS)]
    note = (f"; {', '.join(skipped)} installed but not taken by auto (its licence): name it "
            f"with --generator" if skipped else "")
    if pick is not None:
        e = pick.entry
        adapter = identity_adapter(e)
        faces = f", faces kept by {adapter[0]}" if adapter else ""
        return GeneratorChoice(e.name, f"generation: {e.name}@{pick.installed.short} "
                                       f"({e.kind}{faces}){note}", auto=True)
    better = suggestion(GENERATOR_KINDS, gpu_driver_present())
    line = f"generation: {DESCRIBE.get(offline, offline)}"
    if better is not None:
        line += (f"; `montage models pull {better.name}` for generated shots "
                 f"(about {better.approx_bytes / 1e9:.1f} GB)")
    return GeneratorChoice(offline, line + note, auto=True)


def make_generator(spec: str) -> Generator | None:
    """A generator for ``spec`` ('standin', 'builtin', 'builtin:PATH', 'diffusers:MODEL[+I2V]',
    a catalogue model name, 'off'; resolve 'auto' first with :func:`resolve_auto`).

    Cheap: weights and pipelines load on the first generated shot. A missing weights file or
    model folder, or a folder that is not a diffusers pipeline, fails here (GeneratorModelError).
    """
    text = (spec or "").strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "off" and not arg:
        return None
    if kind == "auto" and not arg:
        return make_generator(resolve_auto().spec)
    if kind == "standin" and not arg:
        from generator.standin import StandinGenerator

        return StandinGenerator()
    if kind == "builtin":
        from generator.builtin import DEFAULT_WEIGHTS, BuiltinGenerator

        return BuiltinGenerator(Path(arg) if arg else DEFAULT_WEIGHTS)
    if kind == "diffusers":
        from generator.diffusers_backend import DiffusersGenerator

        main, plus, i2v = arg.partition("+")
        if plus and not i2v.strip():
            raise GeneratorModelError(f"generator {spec!r}: nothing after '+'",
                                      "write diffusers:T2I_MODEL+I2V_MODEL")
        if not plus and _catalogue(main.strip()) is not None:
            return catalogue_generator(main.strip())
        return DiffusersGenerator(main.strip(), i2v=i2v.strip() or None)
    if _catalogue(text) is not None:
        return catalogue_generator(text)
    raise GeneratorModelError(f"unknown generator {spec!r}", f"available: {available()}")


def _catalogue(name: str):
    from retrieval.models import catalogue

    return catalogue().get(name.partition("@")[0])


def catalogue_generator(name: str):
    """The diffusers generator of an installed catalogue image or video model."""
    from generator.diffusers_backend import DiffusersGenerator, DiffusersSettings
    from retrieval.models import manual_hint, status

    e = _catalogue(name)
    if e.kind not in GENERATOR_KINDS:
        raise GeneratorModelError(f"{e.name} is a {e.kind} model, not a generator",
                                  f"generators: {available()}")
    st = status(e)
    if st.installed is None:
        raise GeneratorModelError(f"{e.name} is not installed"
                                  + (f" ({st.problem})" if st.problem else ""),
                                  f"montage models pull {e.name}; " + manual_hint(e))
    s = e.settings
    settings = DiffusersSettings(steps=int(s.get("steps", 25)),
                                 guidance=float(s.get("guidance", 5.0)),
                                 max_side=int(s["max_side"]) if s.get("max_side") else None,
                                 variant=s.get("variant"))
    adapter = identity_adapter(e)
    return DiffusersGenerator(str(st.installed.folder), settings,
                              label=f"{e.name}@{st.installed.short}",
                              ip_adapter=adapter[1] if adapter else None)


def identity_adapter(e) -> tuple[str, tuple[Path, str, str]] | None:
    """The installed identity model that fits image model ``e`` (its family), as
    (name, (snapshot folder, subfolder, weights file)); None when there is none."""
    from retrieval.models import catalogue, status

    if not e.family:
        return None
    fits = sorted((x for x in catalogue().values()
                   if x.kind == "identity" and x.works_with == e.family and x.commercial),
                  key=lambda x: (-x.rank, x.name))
    for x in fits:
        found = status(x).installed
        if found is not None:
            return x.name, (found.folder, str(x.settings.get("subfolder", "")),
                            str(x.settings.get("weight_name", "")))
    return None


__all__ = ["DESCRIBE", "GENERATOR_KINDS", "GeneratorChoice", "OFFLINE", "SEVERAL", "SPECS", "available",
           "catalogue_generator", "identity_adapter", "make_generator", "make_generators",
           "resolve_auto"]
