"""SubRip captions: each clip's script text, timed to the clip, so viewers can check the match.

Times come from integer film frames and the exact ``Fraction`` rate, rounded once to the
millisecond, so captions change exactly at the cuts.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from montage.film.soundtrack import Soundtrack
from montage.optimize import EditDecisionList
from planner.errors import ProjectError

_TIME = re.compile(r"^(\d+):(\d\d):(\d\d),(\d\d\d)\s*-->\s*(\d+):(\d\d):(\d\d),(\d\d\d)\s*$")


def _stamp(frame: int | Fraction, rate: Fraction) -> str:
    ms = round(Fraction(frame) * 1000 / rate)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


def _stamp_seconds(seconds: Fraction) -> str:
    return _stamp(seconds, Fraction(1))


def write_srt(edl: EditDecisionList, path: Path, sound: Soundtrack | None = None) -> Path:
    """One cue per clip with text (clips with empty text get none), numbered from 1. With a
    narrated ``sound``, a spoken shot's cue lasts as long as its voice, not its clip."""
    path = Path(path)
    voices = {v.shot_id: v for v in sound.lines} if sound is not None else {}
    blocks = []
    for start, d in zip(edl.starts(), edl.decisions):
        text = " ".join(d.text.split())  # one line: SRT ends a cue at the first blank line
        if not text:
            continue
        v = voices.get(d.shot_id)
        if v is not None:
            begin = Fraction(v.start) / edl.rate
            end = min(begin + Fraction(v.speech).limit_denominator(100000),
                      Fraction(start + d.frames) / edl.rate)
            times = f"{_stamp_seconds(begin)} --> {_stamp_seconds(end)}"
        else:
            times = f"{_stamp(start, edl.rate)} --> {_stamp(start + d.frames, edl.rate)}"
        blocks.append(f"{len(blocks) + 1}\n{times}\n{text}\n")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(blocks), encoding="utf-8")
    except OSError as exc:
        raise ProjectError(f"{path}: cannot write subtitles ({exc})",
                           "check the project folder is writable") from exc
    return path


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    """Read cues back as (start s, end s, text); ProjectError names the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read subtitles ({exc})",
                           "write them again with write_srt") from exc
    cues: list[tuple[float, float, str]] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if not lines[i].strip().isdigit():
            raise ProjectError(f"{path}:{i + 1}: expected a cue number, found {lines[i]!r}",
                               "each SRT cue starts with its number on a line of its own")
        if i + 1 >= len(lines) or not (m := _TIME.match(lines[i + 1].strip())):
            raise ProjectError(f"{path}:{i + 2}: expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'",
                               "fix the cue's time line")
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        i += 2
        text = []
        while i < len(lines) and lines[i].strip():
            text.append(lines[i].strip())
            i += 1
        cues.append((start, end, "\n".join(text)))
    return cues
