"""The film's own tracks beside the picture: narration lines and a music bed, placed in film frames.

Plain data, written into ``edit.otio`` as two audio tracks (``montage.film.timeline``) and read
back from there by the mix (``montage.film.audio``), the subtitles and the exports, so what is
heard is what an editor opens. Placement rules live here: a voice starts :data:`LEAD` seconds
into its shot; music is looped (whole plays, the last one trimmed) to the film's length.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from montage.optimize import EditDecisionList
from planner.errors import AudioError, RenderError
from retrieval.media import capture_ffmpeg, file_arg

LEAD = 0.2  # seconds of picture before a voice starts: a cut never lands on the first syllable
BREATH = 0.45  # seconds after the voice ends before the cut (a spoken shot's planned length)
TAIL = 0.1  # at least this much picture after the voice, whatever the beat grid wants
MIN_AUDIO_SECONDS = 1.0  # music (or a voice sample) shorter than this is refused


@dataclass(frozen=True)
class Speech:
    """One shot's narration as synthesised: a WAV padded to whole film frames, and how long
    the voice in it lasts (the subtitles follow that)."""

    shot_id: str
    text: str
    path: Path
    speech: float  # seconds of voice from the file's start
    frames: int  # the file's length in film frames

    def floor(self) -> float:
        """The least a shot carrying this voice may last, in seconds."""
        return LEAD + self.speech + TAIL


@dataclass(frozen=True)
class VoiceLine:
    """A narration clip on the film's time line."""

    shot_id: str
    text: str
    path: str  # absolute
    start: int  # film frame where the voice starts
    frames: int  # clip length in film frames
    speech: float  # seconds of voice from ``start``


@dataclass(frozen=True)
class MusicClip:
    """One play (or the trimmed last play) of the music file on the film's time line."""

    start: int  # film frame
    source_in: int  # film-rate frames into the file
    frames: int


@dataclass(frozen=True)
class Soundtrack:
    """Everything heard beside the footage's own sound."""

    rate: Fraction
    lines: tuple[VoiceLine, ...] = ()
    music: str = ""  # the music file (absolute), "" for none
    music_clips: tuple[MusicClip, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.lines and not self.music_clips


@dataclass(frozen=True)
class AudioInfo:
    """What ffmpeg says an audio file holds."""

    seconds: float
    sample_rate: int
    channels: int


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_TIME = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: [^,]+, (\d+) Hz, ([^,]+)")


def _hms(m: re.Match) -> float:
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def probe_audio(path: Path, what: str = "audio", hint: str = "") -> AudioInfo:
    """The length and format of the first audio stream of ``path``; one AudioError when the
    file is missing, holds no audio ffmpeg can read, or lasts under a second."""
    path = Path(path)
    hint = hint or f"give a {what} file that ffmpeg can play (wav, mp3, flac, ogg, m4a, ...)"
    if not path.is_file():
        raise AudioError(f"{what} file not found: {path}", hint)
    try:
        _, err = capture_ffmpeg(["-i", file_arg(path), "-map", "0:a:0", "-c", "copy", "-f", "null",
                                 "-"], what=f"reading {path}", timeout=120.0)
    except RenderError as exc:
        raise AudioError(f"{path}: not an audio file ({exc.message.split(': ', 2)[-1][:200]})",
                         hint) from None
    stream = _AUDIO.search(err)
    if stream is None:
        raise AudioError(f"{path}: holds no audio stream", hint)
    times = [_hms(m) for m in _TIME.finditer(err)]
    duration = _DURATION.search(err)
    seconds = times[-1] if times else (_hms(duration) if duration else 0.0)
    if duration is not None and times:
        seconds = max(seconds, min(_hms(duration), seconds + 0.5))
    if seconds < MIN_AUDIO_SECONDS:
        raise AudioError(f"{path}: the {what} lasts {seconds:.2f} s, under {MIN_AUDIO_SECONDS:.0f} s",
                         hint)
    layout = stream.group(2).strip()
    channels = 1 if layout == "mono" else 2
    return AudioInfo(seconds=seconds, sample_rate=int(stream.group(1)), channels=channels)


def place(edl: EditDecisionList, speech: dict[str, Speech], music: Path | None = None,
          music_seconds: float = 0.0) -> Soundtrack:
    """Lay each shot's speech :data:`LEAD` seconds into its clip, and the music looped under the
    whole film (``music_seconds``: the file's length)."""
    rate = edl.rate
    lead = round(Fraction(LEAD).limit_denominator(1000) * rate)
    lines = []
    for start, d in zip(edl.starts(), edl.decisions):
        s = speech.get(d.shot_id)
        if s is not None:
            # to the microsecond: what edit.otio's JSON keeps, so the line reads back equal
            lines.append(VoiceLine(d.shot_id, s.text, str(Path(s.path).absolute()), start + lead,
                                   s.frames, round(s.speech, 6)))
    clips: list[MusicClip] = []
    if music is not None:
        play = math.floor(Fraction(music_seconds).limit_denominator(100000) * rate)
        if play < 1:
            raise AudioError(f"{music}: too short to lay under the film", "give a longer music file")
        t = 0
        while t < edl.frames:
            n = min(play, edl.frames - t)
            clips.append(MusicClip(t, 0, n))
            t += n
    return Soundtrack(rate=rate, lines=tuple(lines),
                      music=str(Path(music).absolute()) if music is not None else "",
                      music_clips=tuple(clips))
