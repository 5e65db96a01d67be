"""Wire the four stages into one run: script -> plan -> candidates -> edit -> film.

The only place that knows every stage. Each stage writes its artifact into the project folder
before the next one starts, so a failure leaves readable artifacts and never a finished-looking
film (the renderer writes to a temporary file and renames at the end).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from planner.errors import ProjectError
from planner.plan import load_script
from retrieval.index import build_index, open_index
from retrieval.search import candidates_for_plan

from montage.contact import write_contact_sheet
from montage.optimize import optimize
from montage.render import render_timeline
from montage.report import write_report
from montage.subtitles import write_srt
from montage.timeline import write_timeline


@dataclass(frozen=True)
class MakeOptions:
    """Everything a user can set for one `montage make`."""

    embedder: str = "proxy"
    top: int = 10
    threshold: float = 0.3
    width: int = 1280
    height: int = 720
    rate: Fraction = Fraction(25)
    progress: bool = True


@dataclass(frozen=True)
class MakeResult:
    film: Path
    project: Path
    shots: int
    placeholders: int
    seconds: float  # film length
    timings: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds


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
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ProjectError(f"folder is not writable: {folder}", "choose a writable --out / --project")


def make_film(script: Path, library: Path, out: Path, project: Path | None = None,
              options: MakeOptions = MakeOptions()) -> MakeResult:
    """Make `out` from `script` and the footage under `library`; artifacts go to `project`."""
    project = project or default_project(out)
    check_output(out, project, library)
    timings: dict[str, float] = {}

    def stage(name: str):
        if options.progress:
            print(f"[montage] {name}...", file=sys.stderr, flush=True)
        timings[name] = time.perf_counter()

    def done(name: str):
        timings[name] = time.perf_counter() - timings[name]

    stage("plan")
    plan = load_script(script)
    plan.save(project / "plan.json")
    done("plan")

    stage("index")
    build_index(library, options.embedder, progress=options.progress)
    done("index")

    stage("search")
    index = open_index(library)
    candidates = candidates_for_plan(index, plan, top=options.top)
    (project / "candidates.json").write_text(candidates.to_json(), encoding="utf-8")
    done("search")

    stage("optimize")
    solution = optimize(plan, candidates, rate=options.rate, width=options.width,
                        height=options.height, threshold=options.threshold)
    edit = project / "edit.otio"
    write_timeline(solution.edl, edit, name=script.stem)
    done("optimize")

    stage("render")
    render_timeline(edit, out, progress=options.progress)
    write_srt(solution.edl, out.with_suffix(".srt"))
    if out.parent.resolve() != project.resolve():
        write_srt(solution.edl, project / "film.srt")
    done("render")

    write_contact_sheet(out, solution.edl, project / "contact.png")
    write_report(project / "report.md", plan, candidates, solution, film=out)
    placeholders = sum(d.source == "placeholder" for d in solution.edl.decisions)
    return MakeResult(film=out, project=project, shots=len(plan.shots), placeholders=placeholders,
                      seconds=solution.edl.seconds, timings=timings)
