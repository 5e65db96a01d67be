"""Write generated frames as an .mp4 at the film's size, rate and exact frame count.

The model's few small frames are spread over the shot's length by linear blending at their own
size, then ffmpeg scales them up (filling the frame, centre-cropped) and encodes H.264. ffmpeg
runs through ``retrieval.media.ffmpeg``, the one module that starts ffmpeg processes (it imports
nothing of the montage stage itself), so no encoder is ever left running.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from generator.errors import GenerationFailed


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the aspect of ``width`` x ``height`` and resize (area filter) to it."""
    from PIL import Image

    h, w = frame.shape[:2]
    target = width / height
    if w / h > target:
        cw, ch = max(1, round(h * target)), h
    else:
        cw, ch = w, max(1, round(w / target))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = np.ascontiguousarray(frame[y0:y0 + ch, x0:x0 + cw, :3])
    return np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.BOX))


def spread(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames blended linearly from ``frames`` (T, h, w, 3), first and last kept."""
    return np.stack([spread_one(frames, count, i) for i in range(count)])


def spread_one(frames: np.ndarray, count: int, i: int) -> np.ndarray:
    """Frame ``i`` of :func:`spread` alone (a long shot's frames are made one at a time)."""
    frames = np.asarray(frames)
    t = frames.shape[0]
    if t == 1 or count == 1:
        return frames[0]
    pos = i * (t - 1) / (count - 1)
    lo = min(int(np.floor(pos)), t - 1)
    hi = min(lo + 1, t - 1)
    w = pos - lo
    if w == 0.0:
        return frames[lo]
    mixed = frames[lo].astype(np.float32) * (1 - w) + frames[hi].astype(np.float32) * w
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def write_clip(frames: np.ndarray, path: Path, *, count: int, width: int, height: int,
               rate: Fraction, shot_id: str,
               finish: Callable[[np.ndarray, int], np.ndarray] | None = None,
               preset: str = "veryfast") -> Path:
    """Encode ``count`` frames spread from ``frames`` to ``path`` (atomic; exact count checked).

    ``finish(frame, index)``, when given, turns each spread frame into the frame to encode (any
    one size, e.g. the face pass's work size); frames are written one at a time, so a long
    shot at a large work size never sits in memory whole. ``preset``: x264's (the clip is
    encoded again when the film is rendered, so a faster one costs only disk in the cache).
    """
    from retrieval.media import count_video_frames, file_arg, run_ffmpeg
    from planner.errors import RenderError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    raw = path.with_name(f".{path.stem}.{os.getpid()}.rgb")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    try:
        with open(raw, "wb") as fh:
            for i in range(count):
                frame = spread_one(frames, count, i)
                done = np.ascontiguousarray(finish(frame, i) if finish else frame, dtype=np.uint8)
                if i == 0:
                    h, w = done.shape[:2]
                elif done.shape[:2] != (h, w):
                    raise GenerationFailed(f"shot {shot_id}: frame {i} changed size")
                fh.write(done.tobytes())
        scale = (f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
                 f"crop={width}:{height},setsar=1")
        run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(rate),
                    "-i", file_arg(raw), "-vf", scale, "-frames:v", str(count), "-r", str(rate),
                    "-c:v", "libx264", "-preset", preset, "-crf", "18", "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", "-f", "mp4", file_arg(tmp)],
                   what=f"encoding generated shot {shot_id}")
        got = count_video_frames(tmp)
        if got != count:
            raise GenerationFailed(f"shot {shot_id}: the encoded clip has {got} frames, not {count}")
        tmp.replace(path)
    except RenderError as exc:
        raise GenerationFailed(f"shot {shot_id}: {exc.message}", exc.hint) from exc
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return path


def to_uint8(a, shot_id: str) -> np.ndarray:
    """Pipeline output in [0, 1] as uint8; NaN (e.g. float16 overflow) fails, never shows noise."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise GenerationFailed(f"shot {shot_id}: the pipeline produced NaN or infinite pixels",
                               "run it in float32 (a CPU) or with a VAE fixed for float16")
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def pipeline_frames(out, shot_id: str) -> np.ndarray:
    """(T, h, w, 3) uint8 from a video pipeline's output (a batch of one)."""
    frames = out.frames
    frames = frames[0] if isinstance(frames, (list, tuple)) or np.asarray(frames).ndim == 5 else frames
    return to_uint8(np.asarray(frames), shot_id)
