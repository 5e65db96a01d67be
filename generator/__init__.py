"""generator: fill shots the library cannot, and keep each character the same person.

Importing this package is cheap; torch, diffusers and dlib load on first use, in the one module
that owns each. Backends: ``standin`` (a previs shot composed from a library frame and the
cast's photos), ``builtin`` (the small diffusion model), ``diffusers``; ``candidates`` turns a
generated clip into a measured candidate; ``placeholder`` draws the labelled title card of a
shot left missing.
"""
from __future__ import annotations

from generator.cast import identity_from_library, load_cast, resolve_identity
from generator.errors import CastError, GenerationFailed, GeneratorError, GeneratorModelError
from generator.factory import (OFFLINE, SPECS, GeneratorChoice, make_generator, make_generators,
                               resolve_auto)
from generator.types import FILL_TRIES, Character, GeneratedClip, GenerationRequest, Generator

__all__ = [
    "FILL_TRIES", "OFFLINE", "SPECS", "CastError", "Character", "GeneratedClip", "GenerationFailed",
    "GenerationRequest", "Generator", "GeneratorChoice", "GeneratorError", "GeneratorModelError",
    "identity_from_library", "load_cast", "make_generator", "make_generators", "resolve_auto",
    "resolve_identity",
]
