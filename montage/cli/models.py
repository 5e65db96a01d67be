"""`montage models list | pull NAME | remove NAME | check [NAME]`: a thin wrapper over
``retrieval.models`` (the catalogue, pulls, removal) and ``generator.modelcheck`` (timing)."""
from __future__ import annotations

import argparse
import json
import sys

from planner.errors import ModelError


def add_parser(sub) -> None:
    m = sub.add_parser("models", help="list, pull, remove and check the models montage can use")
    msub = m.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    p = msub.add_parser("list", help="the catalogue: installed or not, size, licence, needs")
    p.add_argument("--json", action="store_true")
    p = msub.add_parser("pull", help="download a model into the Hugging Face cache (resumable, "
                                     "hash-checked)")
    p.add_argument("name")
    p.add_argument("--accept-licence", action="store_true",
                   help="accept a non-commercial licence without being asked")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = msub.add_parser("remove", help="delete a pulled model and free its space")
    p.add_argument("name")
    p = msub.add_parser("check", help="load each installed model and time one small inference")
    p.add_argument("name", nargs="*")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "pull": _pull, "remove": _remove, "check": _check}[args.models_command](args)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _list(args: argparse.Namespace) -> int:
    from retrieval.models import catalogue, hub_cache, models_home, offline, status, user_file

    rows = [status(e) for e in catalogue().values()]
    if args.json:
        print(json.dumps([{**st.entry.to_json(),
                           "installed": st.installed is not None,
                           "revision_installed": st.installed.revision if st.installed else None,
                           "how": st.installed.how if st.installed else None,
                           "folder": str(st.installed.folder) if st.installed else None,
                           "bytes": st.installed.bytes if st.installed else 0,
                           "problem": st.problem or None} for st in rows], indent=2))
        return 0
    print(f"{'NAME':22} {'KIND':9} {'STATE':15} {'SIZE':>9}  {'RUNS ON':8} LICENCE")
    used = 0
    for st in rows:
        e = st.entry
        if st.installed is not None:
            state = "installed" if st.installed.how == "pulled" else "placed by hand"
            size = _gb(st.installed.bytes)
            used += st.installed.bytes
        else:
            state, size = "-", "~" + _gb(e.approx_bytes) if e.approx_bytes else "?"
        runs = "CPU" if e.needs == "cpu" else f"GPU {e.vram_gb:g}G"
        licence = e.licence.split(" (")[0] + ("" if e.commercial else " [asks]")
        print(f"{e.name:22} {e.kind:9} {state:15} {size:>9}  {runs:8} {licence}")
        print(f"{'':22} {e.purpose}")
        if st.problem:
            print(f"{'':22} note: {st.problem}")
    print(f"\n{_gb(used)} installed; hub cache {hub_cache()} (shared with other tools); "
          f"montage's records {models_home()}; your entries {user_file()}")
    if offline():
        print("HF_HUB_OFFLINE is set: pull downloads nothing")
    print("montage models pull NAME to install one; [asks]: a non-commercial licence, shown "
          "before the pull, never chosen by auto")
    return 0


def _confirm(e) -> bool:
    print(f"{e.name} is under: {e.licence}\n  {e.licence_url}", file=sys.stderr)
    if not sys.stdin.isatty():
        return False
    return input("Accept this licence and download it? [y/N] ").strip().lower() in ("y", "yes")


def _pull(args: argparse.Namespace) -> int:
    from retrieval.models import entry, pull

    e = entry(args.name)
    found, downloaded = pull(args.name, confirm=(lambda _: True) if args.accept_licence else _confirm,
                             progress=not args.quiet)
    if downloaded:
        print(f"pulled {e.name} at {found.revision[:12]} ({_gb(found.bytes)}, every file's "
              f"hash checked) into {found.folder}")
    else:
        where = "placed by hand" if found.how == "by hand" else "already installed"
        print(f"{e.name} is {where} ({found.folder}); nothing downloaded")
    if e.kind == "embedder":  # its label vectors once now, not in the first index's time
        from retrieval.embed import prepare_embedder

        if not args.quiet:
            print(f"preparing {e.name}: the text vectors of its label names (once)",
                  file=sys.stderr)
        prepare_embedder(e.name)
    print(f"  {_next_step(e)}")
    return 0


def _next_step(e) -> str:
    if e.kind == "embedder":
        return (f"montage make and montage index now use it by default (--embedder auto); a "
                f"library already indexed is re-embedded from its stored keyframes, no decoding")
    if e.kind in ("image", "video"):
        if not e.commercial:
            return f"use it with --generator {e.name} (auto never takes it: its licence)"
        return "montage make now fills missing shots with it by default (--generator auto)"
    return f"used with an installed {e.works_with} image model for characters with photos"


def _remove(args: argparse.Namespace) -> int:
    from retrieval.models import remove

    freed = remove(args.name)
    print(f"removed {args.name}: {_gb(freed)} freed")
    return 0


def _check(args: argparse.Namespace) -> int:
    from generator.modelcheck import check

    results = check(args.name or None)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    elif not results:
        print("no model is installed: montage models list shows what can be pulled")
    for r in results if not args.json else ():
        mark = "ok" if r.ok else "FAILED"
        timing = f" (load {r.load_s:.1f} s, run {r.run_s:.2f} s on {r.device})" if r.run_s else ""
        print(f"{r.name:22} {mark:6} {r.what}{timing}")
    if any(not r.ok for r in results):
        raise ModelError(f"{sum(not r.ok for r in results)} model(s) failed the check",
                         hint="pull a failed model again (montage models remove NAME; montage "
                              "models pull NAME)")
    return 0


__all__ = ["add_parser", "run"]
