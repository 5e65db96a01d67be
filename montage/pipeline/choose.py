"""Which embedder and generator a run uses when the user says ``auto`` (the default).

A project remembers what it was cut with (``ProjectState.embedder`` / ``.generator``: the
resolved names, with the model revision), and ``auto`` keeps that, so pulling a new model never
silently changes an existing project's film; naming a model (``--embedder clip-vit-b32``) is how
a project moves to it. A new project, or one whose model is gone, takes what
:func:`retrieval.embed.resolve_embedder` and :func:`generator.resolve_auto` choose (the best
installed model that runs here, else the offline default). Each choice is said in one line,
with the next step.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from generator import resolve_auto
from planner.errors import MontageError
from retrieval.embed import AUTO, canonical_name, catalogue_embedders, resolve_embedder

from montage.project import DamagedState, load_state


def choose_models(options, project: Path, *, offline_generator: str = "off"):
    """(``options`` with ``auto`` resolved, the lines that say what was chosen)."""
    try:
        state = load_state(project)
    except DamagedState:  # the run rebuilds it; the models are chosen afresh
        state = None
    embedder, generator = options.embedder, options.generator
    lines = []
    if (embedder or AUTO) == AUTO:
        kept = state.embedder if state is not None else ""
        problem = _problem(kept) if kept else "new"
        if problem is None:
            embedder = kept
            lines.append(f"retrieval: {kept} (this project's; --embedder NAME moves it to "
                         f"another: {', '.join(('proxy',) + catalogue_embedders())})")
        else:
            choice = resolve_embedder(AUTO)
            embedder = choice.spec
            lines.append(choice.line)
            if problem != "new":
                lines.append(f"warning: this project was cut with {kept}, which cannot be used "
                             f"now ({problem}); cutting it with {canonical_or(embedder)} instead")
    else:
        lines.append(f"retrieval: {embedder} (--embedder)")
    if (generator or AUTO) == AUTO:
        kept = getattr(state, "generator", "") if state is not None else ""
        problem = _generator_problem(kept) if kept else "new"
        if problem is None:
            generator = kept
            lines.append(f"generation: {kept} (this project's; --generator NAME moves it to "
                         f"another)")
        else:
            choice = resolve_auto(offline_generator)
            generator = choice.spec
            lines.append(choice.line)
            if problem != "new":
                lines.append(f"warning: this project's generator {kept} cannot be used now "
                             f"({problem}); using {generator} instead")
    else:
        lines.append(f"generation: {generator} (--generator)")
    return replace(options, embedder=embedder, generator=generator), tuple(lines)


def canonical_or(spec: str) -> str:
    try:
        return canonical_name(spec)
    except MontageError:
        return spec


def _problem(name: str) -> str | None:
    """Why the embedder a project recorded cannot be built now (None: it can)."""
    try:
        canonical_name(name)
    except MontageError as exc:
        return exc.message
    return None


def _generator_problem(spec: str) -> str | None:
    from generator import make_generator

    try:
        make_generator(spec)
    except MontageError as exc:
        return exc.message
    return None


__all__ = ["choose_models"]
