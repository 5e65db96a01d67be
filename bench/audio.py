"""Sound speed: `python bench/audio.py [--music-seconds 180]` (in `make bench`).

Prints JSON lines:

* narration: the demo script planned and every sentence spoken by Piper (the bundled voice, one
  subprocess, a fresh cache), against the narrated film's length (speech plus lead and breath
  per shot); the target is under 0.2x the film's length;
* beats: a click track of known tempo (120 bpm, ffmpeg-made, mp3) of ``--music-seconds``,
  tracked in a fresh process: librosa's import and the tracking itself (decode, onsets, beats)
  timed apart; the target is under 5 s for 3 minutes;
* mix: mixing narration and music into a film of the demo's narrated length and normalising it
  (the loudnorm passes), for scale.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from montage.film.soundtrack import BREATH, LEAD, place, probe_audio  # noqa: E402
from montage.film.timeline import write_timeline  # noqa: E402
from montage.film.render import render_timeline  # noqa: E402
from montage.sound.narrate import find_voice, narrate  # noqa: E402
from montage.optimize import EditDecision, EditDecisionList  # noqa: E402

from planner.plan import load_script  # noqa: E402
from retrieval.media.ffmpeg import ffmpeg_exe  # noqa: E402

RATE = Fraction(25)


def _emit(**fields: object) -> None:
    print(json.dumps({"bench": "audio", "cpus": os.cpu_count(), "python": platform.python_version(),
                      "load_avg_1min": round(os.getloadavg()[0], 2), **fields}), flush=True)


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children: a figure that,
    unlike wall time, does not grow when other work shares the machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _click(path: Path, seconds: float, bpm: float = 120.0) -> Path:
    beat, bar = 60 / bpm, 240 / bpm
    expr = (f"if(lt(mod(t,{bar}),{beat / 2}),0.9*sin(2*PI*55*t),0.5*sin(2*PI*1760*t))"
            f"*exp(-30*mod(t,{beat}))")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc='{expr}':s=44100:d={seconds}", "-c:a", "libmp3lame", "-q:a", "4",
                    str(path)], check=True)
    return path


_BEATS = """
import json, sys, time
t0 = time.perf_counter()
import librosa, librosa.beat, librosa.onset
t1 = time.perf_counter()
from montage.sound.music import track_beats
g = track_beats(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "track_s": t2 - t1, "tempo": g.tempo,
                  "beats": len(g.beats), "downbeats": len(g.downbeats)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music-seconds", type=float, default=180.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="montage-bench-audio-") as tmp:
        work = Path(tmp)
        plan = load_script(ROOT / "assets" / "demo" / "script.txt")
        voice = find_voice()
        started, cpu = time.perf_counter(), _cpu()
        speech = narrate(plan, voice, work / "cache", RATE)
        synth, synth_cpu = time.perf_counter() - started, _cpu() - cpu
        film = sum(LEAD + s.speech + BREATH for s in speech.values())
        _emit(stage="narration", lines=len(speech), speech_s=round(sum(s.speech for s in speech.values()), 2),
              film_s=round(film, 2), synth_s=round(synth, 2), ratio=round(synth / film, 3),
              cpu_s=round(synth_cpu, 2), target_ratio=0.2)

        music = _click(work / "click.mp3", args.music_seconds)
        for run in ("first", "second"):  # the first may compile librosa's numba code once
            cpu = _cpu()
            done = subprocess.run([sys.executable, "-c", _BEATS, str(music)], capture_output=True,
                                  text=True, check=True, cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            r = json.loads(done.stdout.strip().splitlines()[-1])
            _emit(stage="beats", run=run, music_s=args.music_seconds, true_bpm=120.0,
                  tempo=r["tempo"], beats=r["beats"], downbeats=r["downbeats"],
                  import_s=round(r["import_s"], 2), track_s=round(r["track_s"], 2),
                  total_s=round(r["import_s"] + r["track_s"], 2),
                  process_cpu_s=round(_cpu() - cpu, 2), target_s=5.0)

        frames = [round((LEAD + s.speech + BREATH) * RATE) for s in speech.values()]
        edl = EditDecisionList(RATE, 1280, 720, tuple(
            EditDecision(sid, s.text, "placeholder", "card", "", 0, n, 0.3)
            for (sid, s), n in zip(speech.items(), frames)))
        sound = place(edl, speech, music, probe_audio(music).seconds)
        write_timeline(edl, work / "edit.otio", sound=sound)
        started = time.perf_counter()
        render_timeline(work / "edit.otio", work / "film.mp4")
        with_mix = time.perf_counter() - started
        write_timeline(edl, work / "plain.otio")
        started = time.perf_counter()
        render_timeline(work / "plain.otio", work / "plain.mp4")
        plain = time.perf_counter() - started
        _emit(stage="mix", film_s=round(edl.seconds, 2), render_with_mix_s=round(with_mix, 2),
              render_without_s=round(plain, 2), mix_s=round(with_mix - plain, 2))


if __name__ == "__main__":
    main()
