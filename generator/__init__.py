"""generator: fill shots the library cannot, and keep each character the same person.

Importing this package is cheap; torch, diffusers and dlib load on first use, in the one module
that owns each. ``placeholder`` draws the labelled title card of a shot left missing.
"""
from __future__ import annotations

from generator.cast import identity_from_library, load_cast, resolve_identity
from generator.errors import CastError, GenerationFailed, GeneratorError, GeneratorModelError
from generator.factory import SPECS, GeneratorChoice, make_generator, resolve_auto
from generator.types import Character, GeneratedClip, GenerationRequest, Generator

__all__ = [
    "SPECS", "CastError", "Character", "GeneratedClip", "GenerationFailed", "GenerationRequest",
    "Generator", "GeneratorChoice", "GeneratorError", "GeneratorModelError",
    "identity_from_library", "load_cast", "make_generator", "resolve_auto", "resolve_identity",
]
