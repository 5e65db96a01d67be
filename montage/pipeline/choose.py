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
from retrieval.embed import AUTO, canonical_name, resolve_embedder

from montage.project import DamagedState, load_state


def choose_models(options, project: Path, *, offline_generator: str = "off"):
    """(``options`` with ``auto`` resolved, the lines that say what was chosen)."""
    try:
        state = load_state(project)
    except DamagedState:  # the run rebuilds it; the models are chosen afresh
        state = None
    lines: list[str] = []
    embedder = _choose("retrieval", options.embedder, state.embedder if state else "",
                       _problem, lambda: resolve_embedder(AUTO), "--embedder", lines)
    generator = _choose("generation", options.generator, getattr(state, "generator", ""),
                        _generator_problem, lambda: resolve_auto(offline_generator),
                        "--generator", lines)
    return replace(options, embedder=embedder, generator=generator), tuple(lines)


def _choose(what: str, asked: str, kept: str, problem, resolve, flag: str,
            lines: list[str]) -> str:
    """One kind: the name asked for, else the project's own (``kept``) if it can be used now,
    else ``resolve()``'s choice; the line saying so is appended to ``lines``."""
    if (asked or AUTO) != AUTO:
        lines.append(f"{what}: {asked} ({flag})")
        return asked
    why = problem(kept) if kept else None
    if kept and why is None:
        lines.append(f"{what}: {kept} (this project's; {flag} NAME moves it to another)")
        return kept
    choice = resolve()
    lines.append(choice.line)
    if kept:
        lines.append(f"warning: this project was cut with {kept}, which cannot be used now "
                     f"({why}); using {canonical_or(choice.spec)} instead")
    return choice.spec


def canonical_or(spec: str) -> str:
    try:
        return canonical_name(spec)
    except MontageError:
        return spec


def _why_not(build, name: str) -> str | None:
    """Why ``build(name)`` fails now (None: the model a project recorded can be used)."""
    try:
        build(name)
    except MontageError as exc:
        return exc.message
    return None


def _problem(name: str) -> str | None:
    return _why_not(canonical_name, name)


def _generator_problem(spec: str) -> str | None:
    from generator import make_generator

    return _why_not(make_generator, spec)


__all__ = ["choose_models"]
