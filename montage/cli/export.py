"""``montage export PROJECT --to FILE``: a thin wrapper over :func:`montage.film.export_project`."""
from __future__ import annotations

import argparse
from pathlib import Path

EXTENSIONS = ".otio, .otioz, .fcpxml, .xml (Final Cut 7 / Premiere), .edl, .mlt, .kdenlive"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a project's cut for an editing program")
    p.add_argument("project", type=Path, help="the project folder (holds edit.otio)")
    p.add_argument("--to", type=Path, required=True, metavar="FILE",
                   help=f"file to write; its extension picks the format: {EXTENSIONS}")


def run(args: argparse.Namespace) -> int:
    from montage.film import export_project

    result = export_project(args.project, args.to)
    media = result.media
    made = (f"; media in {media.folder}: {media.rendered} rendered, {media.reused} reused, "
            f"{media.copied} copied") if media.rendered + media.reused + media.copied else ""
    print(f"wrote {result.path} ({result.format}, {result.clips} clips{made})")
    return 0
