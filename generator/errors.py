"""What can go wrong while generating, as MontageError subclasses the CLI prints in one line.

The caller's rule is simple: a GeneratorError raised by ``Generator.generate`` concerns that one
shot (it is left missing and the film still renders); one raised by ``make_generator`` concerns
the model (the run goes on without generation, or stops, as the caller decides).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from planner.errors import MontageError


class GeneratorError(MontageError):
    """Base of every generation failure."""


class GeneratorModelError(GeneratorError):
    """The generator spec, model folder or weights cannot be used."""


class CastError(GeneratorError):
    """cast.toml or a character's reference image cannot be used."""


class GenerationFailed(GeneratorError):
    """One shot could not be generated (out of memory, bad request, encoding failed)."""


_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory",
                "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocator failures, whichever library raised them."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name in ("OutOfMemoryError", "OutOfMemory"):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


@contextmanager
def memory_guard(shot_id: str, where: str) -> Iterator[None]:
    """Turn an allocation failure inside the block into a GenerationFailed for ``shot_id``.

    Partial results are dropped by the caller: a shot that ran out of memory is never filled
    with whatever was in the buffers.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only memory failures are translated
        if not is_out_of_memory(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GenerationFailed(
            f"shot {shot_id}: {where} ran out of memory ({first[:160]})",
            "the shot is left missing; use a smaller film size or model, free the GPU, "
            "or choose --generator builtin",
        ) from exc
