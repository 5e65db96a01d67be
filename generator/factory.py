"""Build a generator from the one-word spec a user types after --generator.

Specs are data, listed in SPECS, so an unknown one is answered with the list (never a registry
that depends on import order).
"""
from __future__ import annotations

from pathlib import Path

from generator.errors import GeneratorModelError
from generator.types import Generator

SPECS = (
    ("standin", "a previs stand-in composed from a library frame and the cast's photos (offline)"),
    ("builtin", "the project's small diffusion transformer with the shipped weights"),
    ("builtin:WEIGHTS", "the same model with weights from `montage generator train`"),
    ("diffusers:MODEL", "a diffusers pipeline folder or hub id (text-to-image or text-to-video)"),
    ("diffusers:T2I+I2V", "text-to-image, then an image-to-video pipeline"),
    ("off", "no generation: shots without footage stay missing"),
)
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


def make_generator(spec: str) -> Generator | None:
    """A generator for ``spec`` ('standin', 'builtin', 'builtin:PATH', 'diffusers:MODEL[+I2V]',
    'off').

    Cheap: weights and pipelines load on the first generated shot. A missing weights file or
    model folder, or a folder that is not a diffusers pipeline, fails here (GeneratorModelError).
    """
    text = (spec or "").strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "off" and not arg:
        return None
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
        return DiffusersGenerator(main.strip(), i2v=i2v.strip() or None)
    raise GeneratorModelError(f"unknown generator {spec!r}", f"available: {available()}")
