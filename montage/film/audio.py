"""The final mix: the footage's own sound, the narration and the music, normalised for publishing.

Levels are set by rule, not by ear: the footage's sound is ducked under the voice and the
music lies under everything, ducked further while someone speaks, faded out over the film's
last seconds. Ducking follows the narration's known intervals (from the soundtrack), merged
across the short pauses between lines, with short ramps, so nothing pumps between sentences.

The mix is then normalised to :data:`TARGET_I` LUFS integrated with a true peak of at most
:data:`TARGET_TP` dBTP by ffmpeg's ``loudnorm`` in two passes and linear mode (one gain for the
whole film, its dynamics kept). Linear mode is only possible when the peaks fit under the
ceiling after that gain, so a lookahead limiter first holds the peaks down where needed (its
ceiling found from a first measurement); the second pass must report ``linear``, or the mix
fails rather than publish a film normalised another way.
"""
from __future__ import annotations

import json
import math
import os
import re
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from montage.film.soundtrack import LEAD, Soundtrack
from planner.errors import RenderError
from retrieval.media import capture_ffmpeg, file_arg

TARGET_I = -16.0  # LUFS integrated (the common loudness for published online video)
TARGET_TP = -1.5  # dBTP
LRA = 50.0  # loudnorm's range target only gates linear mode (measured LRA must fit): keep it wide
PEAK_MARGIN = 1.2  # dB the limiter keeps below TARGET_TP (inter-sample peaks, the AAC encode)
FOOTAGE_UNDER_VOICE = -15.0  # dB: the footage's own sound while someone speaks
MUSIC_LEVEL = -10.0  # dB: the music bed against the footage
MUSIC_UNDER_VOICE = -12.0  # dB more while someone speaks
RAMP = 0.15  # seconds a duck takes to go down or come back
MERGE_GAP = 1.0  # pauses shorter than this between lines stay ducked (no pumping)
FADE_OUT = 3.0  # seconds the music fades out at the end of the film (at most a third of it)
MIX_RATE = 48000


@dataclass(frozen=True)
class Loudness:
    """What loudnorm measured (its JSON report); ``kind`` is how the second pass normalised."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float
    offset: float
    kind: str = ""


def duck_intervals(sound: Soundtrack) -> list[tuple[float, float]]:
    """Seconds where a voice speaks, merged across pauses shorter than :data:`MERGE_GAP`."""
    spans = sorted((float(v.start / sound.rate), float(v.start / sound.rate) + v.speech)
                   for v in sound.lines)
    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] < MERGE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _gain_expr(intervals: list[tuple[float, float]], db: float) -> str:
    """A ``volume`` expression in t: 1 outside the intervals, ``db`` inside, linear ramps of
    :data:`RAMP` seconds that finish before the voice starts and start after it ends."""
    if not intervals:
        return "1"
    g = 10 ** (db / 20)
    terms = "+".join(f"clip((t-{a - RAMP:.4f})/{RAMP},0,1)*clip(({b + RAMP:.4f}-t)/{RAMP},0,1)"
                     for a, b in intervals)
    return f"1-{1 - g:.6f}*({terms})"


def _narration_wav(sound: Soundtrack, total: float, path: Path) -> int:
    """All voice lines laid into one mono WAV at their places (streamed, constant memory);
    returns its sample rate."""
    rate = None
    with wave.open(str(path), "wb") as out:
        at = 0
        for line in sorted(sound.lines, key=lambda v: v.start):
            with wave.open(line.path, "rb") as src:
                if rate is None:
                    rate = src.getframerate()
                    out.setnchannels(1)
                    out.setsampwidth(2)
                    out.setframerate(rate)
                if (src.getframerate(), src.getnchannels(), src.getsampwidth()) != (rate, 1, 2):
                    raise RenderError(f"{line.path}: narration lines differ in format",
                                      "synthesise every line with one voice")
                begin = round(Fraction(line.start) / sound.rate * rate)
                if begin > at:
                    out.writeframes(bytes(2 * (begin - at)))
                    at = begin
                data = src.readframes(src.getnframes())
                skip = 2 * (at - begin)  # an overlap with the previous line (a hand edit)
                out.writeframes(data[skip:])
                at += max(0, (len(data) - skip) // 2)
        end = math.ceil(total * rate)
        if end > at:
            out.writeframes(bytes(2 * (end - at)))
    return rate or MIX_RATE


def _graph(sound: Soundtrack, total: float, inputs: int, music_inputs: list[tuple[int, float]],
           tail: str) -> str:
    """The mix graph: [0:a] footage, [1:a] narration, then one input per music play."""
    ducks = duck_intervals(sound)
    stereo = f"aresample={MIX_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
    parts = [f"[0:a]{stereo},asetnsamples=n=480,"
             f"volume='{_gain_expr(ducks, FOOTAGE_UNDER_VOICE)}':eval=frame,"
             f"apad,atrim=end={total:.6f}[foot]"]
    mixed = ["[foot]"]
    if inputs > 1:
        parts.append(f"[1:a]{stereo},apad,atrim=end={total:.6f}[voice]")
        mixed.append("[voice]")
    if music_inputs:
        plays = []
        for k, (index, start) in enumerate(music_inputs):
            delay = round(start * 1000)
            parts.append(f"[{index}:a]{stereo},adelay={delay}:all=1[m{k}]")
            plays.append(f"[m{k}]")
        fade = min(FADE_OUT, total / 3)
        music = (f"amix=inputs={len(plays)}:normalize=0:duration=longest," if len(plays) > 1 else "")
        parts.append(f"{''.join(plays)}{music}apad,atrim=end={total:.6f},"
                     f"volume={MUSIC_LEVEL}dB,asetnsamples=n=480,"
                     f"volume='{_gain_expr(ducks, MUSIC_UNDER_VOICE)}':eval=frame,"
                     f"afade=t=out:st={total - fade:.6f}:d={fade:.6f}[music]")
        mixed.append("[music]")
    parts.append(f"{''.join(mixed)}amix=inputs={len(mixed)}:normalize=0:duration=first,"
                 f"atrim=end={total:.6f}{tail}[out]")
    return ";".join(parts)


_JSON = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.S)


def _loudnorm_report(err: str, what: str) -> Loudness:
    found = _JSON.findall(err)
    if not found:
        raise RenderError(f"{what}: loudnorm printed no report", "this is a bug in montage's mix")
    data = json.loads(found[-1])
    number = {k: float(v) if v not in ("-inf", "inf") else -99.0 for k, v in data.items()
              if k != "normalization_type"}
    return Loudness(integrated=number["input_i"], true_peak=number["input_tp"],
                    lra=number["input_lra"], threshold=number["input_thresh"],
                    offset=number["target_offset"], kind=str(data.get("normalization_type", "")))


def _limiter(ceiling_db: float | None) -> str:
    if ceiling_db is None:
        return ""
    limit = min(1.0, max(0.0625, 10 ** (ceiling_db / 20)))
    return f",alimiter=limit={limit:.6f}:level=0:latency=1:attack=5:release=80"


def _inputs(sound: Soundtrack, film: Path, voice: Path | None) -> tuple[list[str], list[tuple[int, float]]]:
    args = ["-i", file_arg(film)]
    if voice is not None:
        args += ["-i", file_arg(voice)]
    music: list[tuple[int, float]] = []
    for c in sound.music_clips:
        index = 1 + (voice is not None) + len(music)
        args += ["-ss", f"{float(c.source_in / sound.rate):.6f}",
                 "-t", f"{float(c.frames / sound.rate):.6f}", "-i", file_arg(Path(sound.music))]
        music.append((index, float(c.start / sound.rate)))
    return args, music


def mix_film(film: Path, sound: Soundtrack, frames: int, work: Path) -> Loudness:
    """Replace ``film``'s sound by the mix of its own sound, the narration and the music,
    normalised (see the module doc); the picture is copied. Returns the second pass's report."""
    film = Path(film)
    total = float(Fraction(frames) / sound.rate)
    voice = None
    if sound.lines:
        voice = work / "narration.wav"
        _narration_wav(sound, total, voice)
    args, music = _inputs(sound, film, voice)
    inputs = 1 + (voice is not None)

    def measure(ceiling: float | None) -> Loudness:
        tail = (f"{_limiter(ceiling)},loudnorm=I={TARGET_I}:TP={TARGET_TP}:LRA={LRA}"
                f":print_format=json")
        _, err = capture_ffmpeg([*args, "-filter_complex", _graph(sound, total, inputs, music, tail),
                                 "-map", "[out]", "-f", "null", "-"],
                                what="measuring the mix's loudness")
        return _loudnorm_report(err, "measuring the mix's loudness")

    first = measure(None)
    if first.integrated <= -70:
        raise RenderError("the mix is silent: nothing to normalise",
                          "check the narration and music files hold sound")
    ceiling, report = None, first
    for _ in range(4):  # hold the peaks down until one gain fits them under the ceiling
        gain = TARGET_I - report.integrated
        over = report.true_peak + gain - (TARGET_TP - PEAK_MARGIN)
        if over <= 0.3:
            break
        # the limiter works before the gain: its ceiling is the wanted peak less the gain
        ceiling = (TARGET_TP - PEAK_MARGIN - gain) if ceiling is None else ceiling - over
        report = measure(ceiling)
    applied = (f"{_limiter(ceiling)},loudnorm=I={TARGET_I}:TP={TARGET_TP}:LRA={LRA}"
               f":measured_I={report.integrated}:measured_TP={report.true_peak}"
               f":measured_LRA={report.lra}:measured_thresh={report.threshold}"
               f":offset={report.offset}:linear=true:print_format=json,aresample={MIX_RATE}")
    out = film.with_name(f".{film.name}.mix.partial")
    try:
        _, err = capture_ffmpeg(
            [*args, "-filter_complex", _graph(sound, total, inputs, music, applied),
             "-map", "0:v:0", "-map", "[out]", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k",
             "-ar", str(MIX_RATE), "-ac", "2", "-movflags", "+faststart", "-f", "mp4",
             file_arg(out)], what="mixing narration and music into the film")
        final = _loudnorm_report(err, "mixing narration and music into the film")
        if final.kind != "linear":
            raise RenderError(f"loudnorm normalised the mix {final.kind or 'in an unknown mode'}, "
                              "not linear", "this is a bug in montage's mix; please report it")
        os.replace(out, film)
    finally:
        out.unlink(missing_ok=True)
    return final


def measure_loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file's sound by ffmpeg's ebur128 (the check)."""
    _, err = capture_ffmpeg(["-i", file_arg(path), "-map", "0:a:0", "-af", "ebur128=peak=true",
                             "-f", "null", "-"], what=f"measuring {path}")
    summary = err[err.rfind("Summary:"):]
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    tp = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if i is None or tp is None:
        raise RenderError(f"{path}: ebur128 printed no summary", "check the file holds sound")
    value = (lambda m: -math.inf if m.group(1) == "-inf" else float(m.group(1)))
    return value(i), value(tp)


def voice_energy(path: Path, spans: list[tuple[float, float]], band: tuple[int, int] = (300, 3400)
                 ) -> list[float]:
    """RMS level (dBFS) of ``path``'s sound in the speech band within each (start, end) span;
    the check that a voice sits where its shot is."""
    steep = ",".join([f"highpass=f={band[0]}"] * 3 + [f"lowpass=f={band[1]}"] * 3)  # 36 dB/octave
    out, _ = capture_ffmpeg(["-i", file_arg(path), "-map", "0:a:0", "-af", steep, "-ac", "1",
                             "-ar", "16000", "-f", "s16le", "-"], what=f"reading {path}",
                            loglevel="error", binary=True)
    samples = np.frombuffer(out, dtype=np.int16).astype(np.float64) / 32768.0
    levels = []
    for a, b in spans:
        chunk = samples[int(a * 16000):int(b * 16000)]
        rms = float(np.sqrt(np.mean(chunk ** 2))) if chunk.size else 0.0
        levels.append(20 * math.log10(rms) if rms > 0 else -120.0)
    return levels


__all__ = ["LEAD", "Loudness", "duck_intervals", "measure_loudness", "mix_film", "voice_energy"]
