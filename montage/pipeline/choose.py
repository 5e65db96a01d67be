"""Which embedder and generator a run uses when the user says ``auto`` (the default).

A project remembers what it was cut with (its :class:`montage.project.Settings` keep the
resolved specs, never ``auto``), so pulling a new model never silently changes an existing
project's film; naming a model (``--embedder clip-vit-b32``) is how a project moves to it. A new
project, ``auto`` asked for on the command line, or a project whose model is gone takes what
:func:`retrieval.embed.resolve_embedder` and :func:`generator.resolve_auto` choose (the best
installed model that runs here, else the offline default). Each choice is said in one line,
with the next step.
"""
from __future__ import annotations

from dataclasses import replace

from generator import OFFLINE, resolve_auto
from planner.errors import MontageError
from retrieval.embed import AUTO, canonical_name, resolve_embedder

from montage.project import Settings


def choose_models(options, stored: Settings | None, *, offline_generator: str = OFFLINE):
    """(``options`` with ``auto`` resolved, the lines that say what was chosen). ``stored``:
    the project's settings (None for a new project); a model this run does not name (not in
    ``options.given``) is the project's own, kept while it can still be used."""
    given = options.given
    lines: list[str] = []

    def asked(name: str) -> str:
        value = getattr(options, name) or AUTO
        if stored is None or given is None or name in given:
            return value
        return AUTO  # not named by this run: the project's own, if it can be used

    embedder = _choose("retrieval", asked("embedder"), stored.embedder if stored else "",
                       _problem, lambda: resolve_embedder(AUTO), "--embedder", lines,
                       stored.embedder_model if stored else "")
    generator = _choose("generation", asked("generator"), stored.generator if stored else "",
                        _generator_problem, lambda: resolve_auto(offline_generator),
                        "--generator", lines, stored.generator_model if stored else "")
    chosen = replace(options, embedder=embedder, generator=generator)
    if stored is not None and embedder != stored.embedder:  # another model: not the old one's
        chosen = replace(chosen, embedder_model="")
    if stored is not None and generator != stored.generator:
        chosen = replace(chosen, generator_model="")
    return chosen, tuple(lines)


def _choose(what: str, asked: str, kept: str, problem, resolve, flag: str,
            lines: list[str], model: str = "") -> str:
    """One kind: the name asked for, else the project's own (``kept``; ``model``: what it
    resolved to when the project was cut) if it can be used now, else ``resolve()``'s choice;
    the line saying so is appended to ``lines``."""
    if asked != AUTO:
        lines.append(f"{what}: {asked} ({flag})")
        return asked
    kept = "" if kept == AUTO else kept
    why = problem(kept) if kept else None
    if kept and why is None:
        lines.append(f"{what}: {kept} (this project's; {flag} NAME moves it to another)")
        return kept
    choice = resolve()
    lines.append(choice.line)
    if kept:
        lines.append(f"warning: this project was cut with {model or kept}, which cannot be "
                     f"used now ({why}); using {canonical_or(choice.spec)} instead")
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
    from generator import make_generators

    return _why_not(make_generators, spec) if spec != "off" else None


__all__ = ["choose_models"]
