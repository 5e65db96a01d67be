"""CLI handlers for the commands that work on a project folder (history, pins, bans...)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from planner.errors import ProjectError
from planner.shots import ShotPlan

from montage.project import (diff_text, history_text, load_choices, load_state, project_lock,
                             revert, save_choices, settle)


def _shot_id(project: Path, shot: str) -> str:
    """A shot id, or its 1-based number in the current cut."""
    plan_path = project / "plan.json"
    if not plan_path.is_file():
        raise ProjectError(f"{project} holds no cut yet", "run montage make with --project first")
    plan = ShotPlan.load(plan_path)
    ids = [s.id for s in plan.shots]
    if shot.isdigit():
        n = int(shot)
        if not 1 <= n <= len(ids):
            raise ProjectError(f"there is no shot {n}: the current cut has {len(ids)} shots",
                               "see the numbers in report.md")
        return ids[n - 1]
    if shot not in ids:
        raise ProjectError(f"no shot {shot!r} in the current cut of {project}",
                           "use a shot id from report.md / plan.json, or its number")
    return shot


def _settle_if_free(project: Path) -> None:
    """A reader finishes a cut a killed run committed but did not publish, when no writer is
    at work (it never waits for one: what it reads is then the last published cut)."""
    try:
        with project_lock(project, "montage (finishing the last cut)"):
            settle(project)
    except ProjectError:
        pass


def run_project_command(args: argparse.Namespace) -> int:
    project: Path = args.project
    if not project.is_dir():
        raise ProjectError(f"project folder not found: {project}",
                           "pass the --project folder of an earlier montage make")
    cmd = args.command
    if cmd in ("history", "diff", "explain"):
        _settle_if_free(project)
    if cmd == "history":
        print(history_text(project))
    elif cmd == "diff":
        if len(args.cuts) not in (0, 2):
            raise ProjectError("diff takes no cut numbers or two of them", "e.g. montage diff P 2 5")
        print(diff_text(project, *args.cuts))
    elif cmd == "explain":
        from montage.project import explain_text

        print(explain_text(project))
    elif cmd == "revert":
        n = revert(project, args.cut, progress=not args.quiet)
        state = load_state(project)
        print(f"cut {n} is cut {args.cut} again; film: {state.film if state else '?'}")
    else:
        with project_lock(project, f"montage {cmd}"):  # no make may cut between read and write
            _choose(args, project, cmd)
    return 0


def _choose(args: argparse.Namespace, project: Path, cmd: str) -> None:
    """pin, unpin, ban, unban: read project.toml, change it, write it back."""
    choices = load_choices(project)
    if cmd == "pin":
        shot = _shot_id(project, args.shot)
        choices = replace(choices, pins={**choices.pins, shot: args.clip})
        print(f"pinned {shot} to {args.clip}; run montage make again to recut")
    elif cmd == "unpin":
        shot = _shot_id(project, args.shot) if args.shot not in choices.pins else args.shot
        if shot not in choices.pins:
            raise ProjectError(f"shot {shot} is not pinned", "see project.toml")
        choices = replace(choices, pins={k: v for k, v in choices.pins.items() if k != shot})
        print(f"unpinned {shot}")
    elif cmd == "ban":
        choices = replace(choices, bans=choices.bans | {args.clip})
        print(f"banned {args.clip}; run montage make again to recut")
    elif cmd == "unban":
        if args.clip not in choices.bans:
            raise ProjectError(f"{args.clip} is not banned", "see project.toml")
        choices = replace(choices, bans=choices.bans - {args.clip})
        print(f"unbanned {args.clip}")
    save_choices(project, choices)
