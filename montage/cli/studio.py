"""`montage studio`: the script beside the film, in the browser (see :mod:`montage.studio`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from planner.errors import ProjectError

from montage.pipeline import default_project
from montage.project import load_state


def add_parser(sub, add_make_options) -> None:
    p = sub.add_parser("studio", help="edit the script beside the film in the browser; recut on save")
    p.add_argument("target", type=Path, help="a script (with --library), or a project folder")
    p.add_argument("--library", type=Path, default=None, help="folder of videos and stills")
    p.add_argument("--out", type=Path, default=None, help="as for make")
    p.add_argument("--project", type=Path, default=None, help="as for make")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default: 127.0.0.1, this computer only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: any free port)")
    add_make_options(p)


def run(args: argparse.Namespace, options) -> int:
    from montage.studio import serve

    studio = open_studio(args, options)
    serve(studio, host=args.host, port=args.port, quiet=args.quiet)
    return 0


def open_studio(args: argparse.Namespace, options):
    """The studio ``montage studio`` serves: a project folder (everything comes from its state
    and settings, the flags on top) or a script with --library."""
    from montage.studio import Studio

    target: Path = args.target
    if target.is_dir():  # a project folder: everything else comes from its state
        state = load_state(target)
        if state is None:
            raise ProjectError(f"{target} is a folder but holds no montage project (no state.json)",
                               "pass the script instead: montage studio story.txt --library DIR")
        library = Path(state.library)
        if args.library is not None and args.library.resolve() != library:
            raise ProjectError(f"{target} was made from the library {library}, not {args.library.resolve()}",
                               f"drop --library, or pass --library {library}")
        script, out, project = Path(state.script), Path(state.film), target
        if not script.is_file():
            raise ProjectError(f"the project's script is gone: {script}",
                               "put it back, or start the studio from a script with --project")
    else:
        if not target.is_file():
            raise ProjectError(f"script not found: {target}", "check the path and spelling")
        if args.library is None:
            raise ProjectError("a script needs --library (the footage folder)",
                               "e.g. montage studio story.txt --library ~/footage")
        script, library = target, args.library
        out = args.out or ((args.project / "film.mp4") if args.project else script.with_name("film.mp4"))
        project = args.project or default_project(out)
        state = load_state(project)
        if state is not None and Path(state.library) != library.resolve():
            raise ProjectError(f"{project} was cut from the library {state.library}, not {library.resolve()}",
                               f"pass --library {state.library}, or choose a new --project")
    if not library.is_dir():
        raise ProjectError(f"footage library not found: {library}", "check the --library path")
    studio = Studio(script, library, project, out, options)
    for note in studio.settings_notes():
        print(f"note: {note}", file=sys.stderr, flush=True)
    try:
        studio.read_script()  # an unreadable script is one clear error before the server starts
    except BaseException:
        studio.close()
        raise
    studio.start()
    return studio
