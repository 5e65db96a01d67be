"""Beats and downbeats of a music file, so cuts can land on them (``--music``).

The one module that imports librosa (on first use). The file is decoded by ffmpeg (anything
ffmpeg reads), beats are tracked by librosa's dynamic-programming beat tracker on an onset
envelope, and the grid is extended at both ends with the tracked period (the tracker leaves out
the first and last beats it is unsure of). librosa has no downbeat tracker: assuming four beats
to the bar, the downbeats are the phase whose beats carry the most low-frequency onset energy
(kick drums and bass notes fall on the one). A grid is cached beside the project by the file's
size and time, so a recut does not track it again.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from montage.film import probe_audio
from planner.errors import AudioError
from retrieval.media import capture_ffmpeg, file_arg

SAMPLE_RATE = 22050
HOP = 512
BEATS_PER_BAR = 4
LOW_BANDS = 16  # of 128 mel bands: below about 370 Hz, where the downbeat's weight is
GRID_VERSION = 1
HINT = "give a music file that ffmpeg can play, at least a second long (wav, mp3, flac, ogg, m4a)"


@dataclass(frozen=True)
class BeatGrid:
    """A music file's beats (seconds from its start); ``tempo`` in beats per minute."""

    path: str
    seconds: float
    tempo: float
    beats: tuple[float, ...]
    downbeats: tuple[float, ...]

    def over(self, length: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Beats and downbeats over ``length`` seconds of film, the music looped to cover it."""
        beats: list[float] = []
        downs: list[float] = []
        start = 0.0
        while start < length and self.seconds > 0:
            beats += [start + b for b in self.beats if start + b <= length]
            downs += [start + b for b in self.downbeats if start + b <= length]
            start += self.seconds
        return tuple(beats), tuple(downs)


def _librosa():
    try:
        import librosa
        import librosa.beat
        import librosa.onset
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise AudioError("--music needs librosa, which is not installed",
                         "pip install librosa") from exc
    return librosa


def decode(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The file's first audio stream as mono float32 samples at ``rate`` (ffmpeg decodes)."""
    out, _ = capture_ffmpeg(["-i", file_arg(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
                             "-f", "f32le", "-"], what=f"decoding {path}", loglevel="error",
                            binary=True)
    return np.frombuffer(out, dtype=np.float32)


def _period(beats: np.ndarray) -> float:
    """Seconds per beat: the slope of a line through the beats (steadier than the median gap,
    which the envelope's hop of about 23 ms quantises)."""
    return float(np.polyfit(np.arange(len(beats)), beats, 1)[0])


def _extend(beats: np.ndarray, seconds: float) -> np.ndarray:
    """The tracked beats plus the beats the tracker left out at both ends, at its period."""
    if len(beats) < 2:
        return beats
    period = _period(beats)
    if period <= 0:
        return beats
    head = np.arange(beats[0] - period, -period / 4, -period)[::-1]
    tail = np.arange(beats[-1] + period, seconds + period / 4, period)
    grid = np.concatenate([head[head >= 0], beats, tail[tail <= seconds]])
    return grid


def _downbeats(beats: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Every fourth beat, at the phase with the most low-band onset energy."""
    if len(beats) < BEATS_PER_BAR:
        return beats[:1]
    frames = np.clip(np.round(beats * SAMPLE_RATE / HOP).astype(int), 0, len(low) - 1)
    # the strongest low onset within a frame either side of the beat
    near = np.max(np.stack([low[np.clip(frames + d, 0, len(low) - 1)] for d in (-1, 0, 1)]), axis=0)
    scores = [float(np.mean(near[p::BEATS_PER_BAR])) for p in range(BEATS_PER_BAR)]
    return beats[int(np.argmax(scores))::BEATS_PER_BAR]


def analyse(samples: np.ndarray, seconds: float, path: str = "") -> BeatGrid:
    """Track beats and downbeats in mono samples at :data:`SAMPLE_RATE`."""
    librosa = _librosa()
    y = np.ascontiguousarray(samples, dtype=np.float32)
    bands = librosa.onset.onset_strength_multi(y=y, sr=SAMPLE_RATE, hop_length=HOP,
                                               channels=[0, LOW_BANDS, 128])
    low, high = bands[0], bands[1]
    envelope = (LOW_BANDS * low + (128 - LOW_BANDS) * high) / 128  # = librosa's onset_strength
    tempo, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=SAMPLE_RATE,
                                            hop_length=HOP, units="frames")
    times = librosa.frames_to_time(frames, sr=SAMPLE_RATE, hop_length=HOP)
    beats = _extend(np.asarray(times, dtype=float), seconds)
    downs = _downbeats(beats, low)
    bpm = float(np.atleast_1d(tempo)[0])
    if len(times) >= 2:
        bpm = 60.0 / _period(np.asarray(times, dtype=float))
    return BeatGrid(path=path, seconds=seconds, tempo=round(bpm, 3),
                    beats=tuple(round(float(b), 4) for b in beats),
                    downbeats=tuple(round(float(b), 4) for b in downs))


def track_beats(path: Path, cache: Path | None = None) -> BeatGrid:
    """The beat grid of a music file (see the module doc); one AudioError when the file is
    missing, not audio, or under a second long."""
    path = Path(path)
    info = probe_audio(path, "music", HINT)
    key = None
    if cache is not None:
        st = path.stat()
        key = hashlib.sha1(json.dumps([GRID_VERSION, str(path.resolve()), st.st_size,
                                       st.st_mtime_ns]).encode()).hexdigest()[:16]
        hit = Path(cache) / f"beats-{key}.json"
        if hit.is_file():
            try:
                data = json.loads(hit.read_text(encoding="utf-8"))
                return BeatGrid(**{**data, "beats": tuple(data["beats"]),
                                   "downbeats": tuple(data["downbeats"])})
            except (ValueError, TypeError, KeyError):
                pass  # a damaged cache entry: track again and replace it
    samples = decode(path)
    seconds = len(samples) / SAMPLE_RATE if len(samples) else info.seconds
    grid = analyse(samples, seconds, str(path.resolve()))
    if cache is not None and key is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        tmp = Path(cache) / f".beats-{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(grid)), encoding="utf-8")
        os.replace(tmp, Path(cache) / f"beats-{key}.json")
    return grid
