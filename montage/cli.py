"""The `montage` command: thin wrappers over importable functions.

`main(argv)` returns an exit code so tests can call it directly. User mistakes (every
MontageError) print one `error:` line and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from fractions import Fraction
from pathlib import Path

from planner.errors import MontageError

DESCRIPTION = """Turn a written script and a footage library into a cut film.

commands:
  make     plan the script, index the library, choose clips, write edit.otio, render the film
  demo     make out/demo/film.mp4 from the bundled demo script and footage
  plan     split a script into shots and print them (or --json)
  index    index a footage folder (incremental: only new or changed files are analysed)
  search   rank library shots for one or more text queries
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


def _add_make_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", default="proxy", help="embedder used to index the library (default: proxy)")
    p.add_argument("--top", type=int, default=10, help="candidates kept per shot (default: 10)")
    p.add_argument("--threshold", type=float, default=0.3,
                   help="below this match score a shot becomes a labelled placeholder (default: 0.3)")
    p.add_argument("--size", type=_size, default=(1280, 720), help="film size WxH (default: 1280x720)")
    p.add_argument("--fps", type=_fps, default=Fraction(25), help="film frame rate (default: 25)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


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
    p.add_argument("--out-dir", type=Path, default=Path("out/demo"), help="where the demo film goes")
    _add_make_options(p)

    p = sub.add_parser("plan", help="split a script into shots")
    p.add_argument("script", type=Path)
    p.add_argument("--json", action="store_true", help="print plan.json")

    p = sub.add_parser("index", help="index a footage folder")
    p.add_argument("library", type=Path)
    p.add_argument("--embedder", default="proxy", help="proxy (offline default) or clip")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("search", help="rank library shots for text queries")
    p.add_argument("library", type=Path)
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--json", action="store_true",
                   help='print [{"query", "hits": [{"path", "start", "end", "score"}]}]')
    return parser


def _make(args: argparse.Namespace, script: Path, library: Path, out: Path | None,
          project: Path | None) -> int:
    from montage.pipeline import MakeOptions, make_film

    if out is None:
        out = (project / "film.mp4") if project else script.with_name("film.mp4")
    if args.top < 1:
        raise MontageError(f"--top must be at least 1, got {args.top}")
    options = MakeOptions(embedder=args.embedder, top=args.top, threshold=args.threshold,
                          width=args.size[0], height=args.size[1], rate=args.fps,
                          progress=not args.quiet)
    result = make_film(script, library, out, project, options)
    print(f"wrote {result.film} ({result.seconds:.1f} s, {result.shots} shots, "
          f"{result.placeholders} placeholders); project: {result.project}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "make":
        return _make(args, args.script, args.library, args.out, args.project)
    if args.command == "demo":
        from montage.demo import DEMO, fetch_demo_library

        library = fetch_demo_library()
        out_dir: Path = args.out_dir
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
        from retrieval.index import build_index

        report = build_index(args.library, args.embedder, progress=not args.quiet)
        print(f"indexed {report.files_indexed} files, reused {report.files_reused}, "
              f"skipped {len(report.files_skipped)}; {report.shots} shots in {report.seconds:.1f} s")
        for path, reason in report.files_skipped:
            print(f"  skipped {path}: {reason}")
        return 0
    if args.command == "search":
        from retrieval.search import hits_to_json, search_library

        if args.top < 1:
            raise MontageError(f"--top must be at least 1, got {args.top}")
        results = search_library(args.library, args.queries, top=args.top)
        if args.json:
            print(json.dumps(hits_to_json(args.library, args.queries, results), indent=2))
        else:
            for query, hits in zip(args.queries, results):
                print(f"{query}:")
                for n, h in enumerate(hits, 1):
                    span = "still" if h.shot.is_still else f"{h.shot.start:.2f}-{h.shot.end:.2f}s"
                    print(f"  {n}. {h.score:.3f}  {h.shot.path}  {span}  ({', '.join(h.shot.labels[:3])})")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
