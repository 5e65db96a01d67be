"""cli (floor 6): the `montage` command: thin wrappers over importable functions.

Owns: the parser and dispatch (here), the project commands (``project``), ``watch``,
``studio``, ``export`` and the demo. May import: every room of ``montage`` and every package;
nothing imports it. `main(argv)` returns an exit code so tests can call it directly. User
mistakes (every MontageError) print one `error:` line and exit 2, never a traceback.
A new command: its parser and handler here (a thin wrapper over the room that owns the work).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from fractions import Fraction
from pathlib import Path

from generator import FILL_TRIES, OFFLINE
from montage.optimize import list_styles
from planner.errors import MontageError

DESCRIPTION = """Turn a written script and a footage library into a cut film.

commands:
  make     plan the script, index the library, choose clips, write edit.otio, render the film;
           run it again after editing the script to recut (only what changed is redone)
  watch    make the film, then recut it each time the script is saved
  studio   the script beside the film in the browser: edit, save, see the recut; swap clips
  history, diff, revert    the cuts of a project, what changed, going back
  pin, unpin, ban, unban   keep a shot on a clip, keep a clip out (survive recuts)
  explain  for each shot: the chosen clip, the runner-up, and which rules decided
  export   the cut for an editing program: .otio, .otioz, .fcpxml, .xml (Final Cut 7,
           Premiere), .edl, .mlt (Shotcut), .kdenlive; title cards become media files
  demo     make out/demo/film.mp4 from the bundled demo script and footage (--narrate:
           a narrated one in out/demo-narrated/)
  plan     split a script into shots and print them (or --json)
  index    index a footage folder (incremental: only new or changed files are analysed)
  search   rank library shots for one or more text queries
  models   list, pull, remove and check the models montage can use (CLIP, diffusion, identity)
  generator train / info   train the builtin shot generator on a library, describe a generator
"""


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 16x16, got {text!r}")
    return w, h


def _fps(text: str) -> Fraction:
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"fps must be a number such as 25 or 30000/1001, got {text!r}") from None
    if not 1 <= rate <= 120:
        raise argparse.ArgumentTypeError(f"fps must be between 1 and 120, got {text!r}")
    return rate


def _threshold(text: str) -> float | str:
    if text.strip().lower() in ("auto", "default"):
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be a number or 'auto', got {text!r}") from None


def _file_or_none(text: str) -> Path | str:
    """A file; an empty value means none (it clears a setting the project remembers)."""
    return "none" if text.strip() == "" else Path(text)


REMEMBERED = ("the project remembers it: a recut without this flag uses the project's, and a "
              "recut with it records the change")


def _add_make_options(p: argparse.ArgumentParser) -> None:
    # every setting defaults to None here: only flags the user typed override what the project
    # remembers (montage.pipeline.options); the defaults of a new project are MakeOptions'
    p.add_argument("--embedder", default=None,
                   help="embedder used to index the library: auto (the default: the best "
                        "installed, a pulled CLIP, else the offline proxy), proxy, a pulled "
                        "model (montage models list) or clip:MODEL:WEIGHTS (" + REMEMBERED + ")")
    p.add_argument("--top", type=int, default=None, help="candidates kept per shot (default: 10)")
    p.add_argument("--style", default=None,
                   help="rule preset (" + ", ".join(list_styles()) + ") or a TOML rule file "
                        "(default: default)")
    p.add_argument("--threshold", type=_threshold, default=None,
                   help="the card bar in sd: a shot whose best clip stands less than this many "
                        "standard deviations above the library's scores for its sentence becomes "
                        "a labelled title card (default, or 'auto': the library's own bar, where "
                        "an unrelated sentence's best hit stands, moved by the style)")
    p.add_argument("--size", type=_size, default=None, help="film size WxH (default: 1280x720)")
    p.add_argument("--fps", type=_fps, default=None, help="film frame rate (default: 25)")
    p.add_argument("--generator", default=None, metavar="SPEC",
                   help="fill shots the library lacks: auto (the default: the best pulled "
                        "diffusion model that runs here, else standin), a pulled model, standin "
                        "(a previs shot composed from a library frame and the cast's photos), "
                        "builtin, builtin:WEIGHTS, diffusers:MODEL (a local diffusers folder or "
                        "hub id), several comma-separated (the measured score picks), or off "
                        "(title cards). A fill wins a shot only where its measured score beats "
                        "the footage and the card")
    p.add_argument("--generate", action="append", default=None, metavar="SHOT_ID",
                   help="generate this shot even if the library has a match (repeatable; "
                        "replaces the shots the project remembers; with --generator off, a "
                        "stand-in)")
    p.add_argument("--fill-tries", type=int, default=None, metavar="N",
                   help="fills each generator makes per generated shot (seeds x library frames); "
                        f"the best by measured score is kept (default: {FILL_TRIES})")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="a seed for every generated shot (default: 0, each shot's own)")
    p.add_argument("--cast", type=_file_or_none, default=None, metavar="cast.toml",
                   help="characters: name, description, reference images, seed ('' for none)")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="if another montage command is writing the project, wait up to SECONDS "
                        "for it (default: make fails at once naming it; watch waits 600 s)")
    p.add_argument("--narrate", action=argparse.BooleanOptionalAction, default=None,
                   help="speak each shot's sentence with a local Piper voice (pip install "
                        "'montage[narration]'); a shot lasts as long as its speech")
    p.add_argument("--voice", type=_file_or_none, default=None, metavar="FILE.onnx",
                   help="a Piper voice (with FILE.onnx.json beside it) instead of the bundled "
                        "one; implies --narrate ('' for the bundled one)")
    p.add_argument("--music", type=_file_or_none, default=None, metavar="FILE",
                   help="music under the film (anything ffmpeg reads): cuts land on its beats, "
                        "looped or trimmed to the film, ducked under the narration ('' for none)")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                   help="where the CLIP embedder and the diffusers generator run (default: auto, "
                        "CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_embedder_options(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--embedder", default=None, help=text)
    p.add_argument("--clip-model", default=None, metavar="NAME",
                   help="open_clip model for --embedder clip (default: ViT-B-32)")
    p.add_argument("--clip-pretrained", default=None, metavar="TAG_OR_PATH",
                   help="open_clip pretrained tag (downloads once, needs internet) or a local "
                        "checkpoint file")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                   help="where the CLIP embedder and the diffusers generator run (default: auto, "
                        "CUDA when present)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="montage", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("make", help="make a film from a script and a footage folder")
    p.add_argument("script", type=Path, help="the script (plain UTF-8 text; blank lines start scenes)")
    p.add_argument("--library", type=Path, required=True, help="folder of videos and stills")
    p.add_argument("--out", type=Path, default=None,
                   help="film to write (default: PROJECT/film.mp4, or film.mp4 beside the script)")
    p.add_argument("--project", type=Path, default=None,
                   help="folder for plan.json, candidates.json, edit.otio, report.md "
                        "(default: FILM.montage/ beside the film)")
    _add_make_options(p)

    p = sub.add_parser("demo", help="make out/demo/film.mp4 from the bundled demo")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where the demo film goes (default: out/demo, or out/demo-narrated "
                        "with --narrate)")
    _add_make_options(p)  # auto there falls back to standin,builtin (see _options)

    p = sub.add_parser("watch", help="make the film, then recut it every time the script is saved")
    p.add_argument("script", type=Path)
    p.add_argument("--library", type=Path, required=True)
    p.add_argument("--out", type=Path, default=None, help="as for make")
    p.add_argument("--project", type=Path, default=None, help="as for make")
    _add_make_options(p)

    for name, text in (("history", "list the cuts of a project"),
                       ("diff", "show, shot by shot, what changed between two cuts"),
                       ("explain", "for each shot: the chosen clip, the runner-up, and why")):
        p = sub.add_parser(name, help=text)
        p.add_argument("project", type=Path)
        if name == "diff":
            p.add_argument("cuts", nargs="*", type=int, metavar="CUT",
                           help="two cut numbers (default: the last two)")
    p = sub.add_parser("revert", help="make an earlier cut the current one again (as a new cut)")
    p.add_argument("project", type=Path)
    p.add_argument("cut", type=int)
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("pin", help="keep a shot on a clip across recuts")
    p.add_argument("project", type=Path)
    p.add_argument("shot", help="shot id (sh-...) or its number in the current cut")
    p.add_argument("clip", help="clip id, e.g. bikes.mp4#2 (see candidates.json or report.md)")
    p = sub.add_parser("unpin", help="let the optimizer choose a pinned shot again")
    p.add_argument("project", type=Path)
    p.add_argument("shot")
    for name, text in (("ban", "never use a clip in this project"), ("unban", "allow a banned clip again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("project", type=Path)
        p.add_argument("clip")

    p = sub.add_parser("plan", help="split a script into shots")
    p.add_argument("script", type=Path)
    p.add_argument("--json", action="store_true", help="print plan.json")

    p = sub.add_parser("index", help="index a footage folder")
    p.add_argument("library", type=Path)
    _add_embedder_options(p, "embedder to index with: auto (default: a pulled CLIP, else the "
                             "offline proxy), proxy, a pulled model, or clip; each embedder's "
                             "vectors are kept, and another one re-embeds without decoding")
    p.add_argument("--workers", type=int, default=None,
                   help="analysis processes beside the embedder (default: cores - 1; 0: none); "
                        "with --engine ray and no --address: the local Ray's CPUs")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local: this machine's processes; ray: Ray tasks on a cluster "
                        "(pip install 'montage[ray]')")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="the Ray cluster to join (default: start a local Ray)")
    p.add_argument("--vectors", default="auto", choices=("auto", "exact", "large"),
                   help="exact: the vectors in memory, rewritten at each commit; large: IVF-PQ "
                        "codes in memory, rows on disk, appended (for millions of shots); auto: "
                        "large above 200,000 shots")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON: counts and every skipped file with its reason")

    p = sub.add_parser("search", help="rank library shots for text queries")
    p.add_argument("library", type=Path)
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--json", action="store_true",
                   help='print [{"query", "hits": [{"path", "start", "end", "score"}]}]')
    p.add_argument("--sheet", type=Path, default=None, metavar="OUT.png",
                   help="also write a contact sheet of the hits with their scores")
    p.add_argument("--mode", default=None, choices=("weighted", "cascade", "embedding", "keywords"),
                   help="how keywords and the embedding combine (default: the measured best)")
    _add_embedder_options(p, "search the index's vectors of this embedder (default: auto: "
                             "the best installed one the index has vectors of, else its last)")

    from montage.cli.studio import add_parser as add_studio_parser

    add_studio_parser(sub, _add_make_options)

    from montage.cli.export import add_parser as add_export_parser

    add_export_parser(sub)

    from generator.commands import add_parser as add_generator_parser

    add_generator_parser(sub)

    from montage.cli.models import add_parser as add_models_parser

    add_models_parser(sub)
    return parser


def _options(args: argparse.Namespace, *, wait: float = 0.0):
    """The run's options from the flags; ``given`` names the settings the user typed (only
    those override what a project remembers)."""
    from montage.pipeline import MakeOptions

    if args.top is not None and args.top < 1:
        raise MontageError(f"--top must be at least 1, got {args.top}")
    if args.fill_tries is not None and args.fill_tries < 1:
        raise MontageError(f"--fill-tries must be at least 1, got {args.fill_tries}")
    if args.wait is not None and not 0 <= args.wait < 1e6:
        raise MontageError(f"--wait must be a number of seconds >= 0, got {args.wait}")
    values: dict = {}
    for name in ("embedder", "style", "top", "generator", "seed", "fill_tries"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.threshold is not None:
        values["threshold"] = None if args.threshold == "auto" else args.threshold
    if args.size is not None:
        values["width"], values["height"] = args.size
    if args.fps is not None:
        values["rate"] = args.fps
    if args.generate is not None:
        values["generate"] = frozenset(args.generate)
    for name in ("cast", "voice", "music"):
        value = getattr(args, name)
        if value is not None:
            values[name] = None if value == "none" else value
    if args.narrate is not None:
        values["narrate"] = args.narrate
    if values.get("voice") is not None:
        values["narrate"] = True  # a voice implies narration
    return MakeOptions(progress=not args.quiet, wait=args.wait if args.wait is not None else wait,
                       given=frozenset(values), **values,
                       # the demo's library is what the builtin model's weights learnt: its
                       # fills compete with stand-ins there, and the measured score picks
                       offline_generator="standin,builtin" if args.command == "demo" else OFFLINE)


def _make(args: argparse.Namespace, script: Path, library: Path, out: Path | None,
          project: Path | None, *, watch: bool = False) -> int:
    from montage.pipeline import Recutter, default_project

    if out is None:
        out = (project / "film.mp4") if project else script.with_name("film.mp4")
    # watch recuts on its own schedule: it waits for a make or a pin rather than skip a save
    recutter = Recutter(library, project or default_project(out),
                        _options(args, wait=600.0 if watch else 0.0),
                        command="montage watch" if watch else f"montage {args.command}")
    if watch:
        from montage.cli.watch import watch as watch_loop

        print(f"watching {script} (Ctrl-C to stop)", file=sys.stderr)
        watch_loop(recutter, script, out)
        return 0
    result = recutter.cut(script, out)
    print(f"wrote {result.film} ({result.seconds:.1f} s, {result.shots} shots, "
          f"{result.placeholders} placeholders; cut {result.cut}: {result.changes}); "
          f"project: {result.project}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "device", None):
        from retrieval.embed import DEVICE_ENV, resolve_device

        resolve_device(args.device)  # cuda without a GPU fails here, before any work
        os.environ[DEVICE_ENV] = args.device  # seen by every model built from here on
    if args.command == "make":
        return _make(args, args.script, args.library, args.out, args.project)
    if args.command == "watch":
        return _make(args, args.script, args.library, args.out, args.project, watch=True)
    if args.command in ("history", "diff", "explain", "revert", "pin", "unpin", "ban", "unban"):
        from montage.cli.project import run_project_command

        return run_project_command(args)
    if args.command == "export":
        from montage.cli.export import run as run_export

        return run_export(args)
    if args.command == "demo":
        from montage.cli.demo import DEMO, fetch_demo_library

        library = fetch_demo_library()
        if args.cast is None:  # the demo shows generated shots of its cast
            args.cast = DEMO / "cast.toml"
        out_dir: Path = args.out_dir or Path("out/demo-narrated" if args.narrate else "out/demo")
        return _make(args, DEMO / "script.txt", library, out_dir / "film.mp4", out_dir / "project")
    if args.command == "plan":
        from planner.plan import load_script

        plan = load_script(args.script)
        if args.json:
            print(plan.to_json())
        else:
            for s in plan.shots:
                who = f" [{', '.join(s.characters)}]" if s.characters else ""
                print(f"{s.id}  scene {s.scene}  {s.duration:4.1f}s  {s.text}{who}\n    query: {s.query}")
        return 0
    if args.command == "index":
        from retrieval.index import index_with, report_dict, summary_lines
        from retrieval.embed import embedder_spec, resolve_embedder

        choice = resolve_embedder(embedder_spec(args.embedder, args.clip_model,
                                                args.clip_pretrained))
        if not args.quiet:
            print(choice.line, file=sys.stderr)
        report = index_with(args.engine, args.library, choice.spec, address=args.address,
                            progress=not args.quiet, workers=args.workers, vectors=args.vectors)
        if args.json:
            print(json.dumps(report_dict(report), indent=2))
            return 0
        lines = summary_lines(report)
        print(lines[0])
        if report.files_reembedded:
            print(f"  {report.files_reembedded} re-embedded from stored keyframes (no video "
                  "decoded)")
        if report.parked:
            print(f"  {report.parked}'s vectors are kept: indexing with it again is free")
        if report.location and Path(report.location).parent.resolve() != args.library.resolve():
            print(f"  the library is read-only: its index is kept in {report.location}")
        for line in lines[1:]:
            print(line)
        return 0
    if args.command == "search":
        from retrieval.embed import embedder_spec
        from retrieval import DEFAULT_MODE, hits_to_json, search_library

        from retrieval.search import check_query

        if args.top < 1:
            raise MontageError(f"--top must be at least 1, got {args.top}")
        for query in args.queries:
            check_query(query)
        from retrieval.search import search_embedder

        spec, line = search_embedder(args.library, embedder_spec(args.embedder, args.clip_model,
                                                                 args.clip_pretrained))
        if line:
            print(line, file=sys.stderr)
        results = search_library(args.library, args.queries, top=args.top, embedder=spec,
                                 mode=args.mode or DEFAULT_MODE)
        if args.sheet is not None:
            from retrieval.search import write_sheet

            write_sheet(args.library, args.queries, results, args.sheet)
            print(f"wrote {args.sheet}", file=sys.stderr)
        if args.json:
            print(json.dumps(hits_to_json(args.library, args.queries, results), indent=2))
        else:
            for query, hits in zip(args.queries, results):
                print(f"{query}:")
                for n, h in enumerate(hits, 1):
                    span = "still" if h.shot.is_still else f"{h.shot.start:.2f}-{h.shot.end:.2f}s"
                    if h.moment is not None:
                        span += f", best at {h.moment:.2f}s"
                    print(f"  {n}. {h.score:.3f}  {h.shot.path}  {span}  ({', '.join(h.shot.labels[:3])})")
        return 0
    if args.command == "studio":
        from montage.cli.studio import run as run_studio

        return run_studio(args, _options(args))
    if args.command == "generator":
        from generator.commands import run as run_generator_command

        return run_generator_command(args)
    if args.command == "models":
        from montage.cli.models import run as run_models

        return run_models(args)
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return _run(args)
    except MontageError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `montage explain P | head`: the reader stopped reading; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail too
        return 141  # as a process killed by SIGPIPE, what shells expect of a cut-off writer


if __name__ == "__main__":
    sys.exit(main())
