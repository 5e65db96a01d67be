"""``montage export PROJECT --to FILE``: a thin wrapper over :func:`montage.film.export_project`.

A project folder is exported as its state names it: the committed cut (``history/NNNN/``, never
a copy half-way through being published), and what the project remembers of how it was made is
said with it (and, for a project cut by an older montage, what was assumed)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXTENSIONS = ".otio, .otioz, .fcpxml, .xml (Final Cut 7 / Premiere), .edl, .mlt, .kdenlive"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a project's cut for an editing program")
    p.add_argument("project", type=Path, help="the project folder (holds edit.otio)")
    p.add_argument("--to", type=Path, required=True, metavar="FILE",
                   help=f"file to write; its extension picks the format: {EXTENSIONS}")


def run(args: argparse.Namespace) -> int:
    from montage.film import export_project
    from montage.project import cut_dir, load_state

    source, made = args.project, ""
    state = load_state(args.project) if (args.project / "state.json").is_file() else None
    if state is not None:
        for note in state.notes:
            print(f"note: {note}", file=sys.stderr)
        if (cut_dir(args.project, state.cut) / "edit.otio").is_file():
            source = cut_dir(args.project, state.cut) / "edit.otio"
        if state.settings is not None:
            s = state.settings
            made = (f"; cut {state.cut}, made with style {s.style}, {s.width}x{s.height} at "
                    f"{s.rate} fps, embedder {s.embedder_model or s.embedder}, generator "
                    f"{s.generator}" + (", narrated" if s.narrate else "")
                    + (f", music {s.music.name}" if s.music else ""))
    result = export_project(source, args.to)
    media = result.media
    made_media = (f"; media in {media.folder}: {media.rendered} rendered, {media.reused} reused, "
                  f"{media.copied} copied") if media.rendered + media.reused + media.copied else ""
    print(f"wrote {result.path} ({result.format}, {result.clips} clips{made_media}){made}")
    return 0
