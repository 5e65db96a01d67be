"""What reading camera formats costs: a 24 MP DNG developed by rawpy (half size, as montage
reads it, and full size) against Pillow decoding a JPEG of the same picture; and decoding a
1080p clip shown right (bwdif for 1080i, libswscale's HDR mapping for 10-bit HLG) against the
same clip decoded plainly, and the index's one pass over it (``scan_video``: cuts on every
frame, keyframes mapped) against the same pass over an SDR encoding of the same picture.

    .venv/bin/python bench/formats.py

Prints seconds and ratios, and the load average (other work on the machine moves them).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval.media import ffmpeg_exe  # noqa: E402
from retrieval.media.decode import decode_video  # noqa: E402
from retrieval.media.stills import read_picture  # noqa: E402
from tests.test_formats import write_dng  # noqa: E402


def best(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def decode_all(path: Path, plain: bool) -> int:
    if plain:
        import av

        with av.open(str(path)) as c:
            c.streams.video[0].thread_type = "AUTO"
            return sum(1 for f in c.decode(video=0) if f.to_ndarray(format="rgb24") is not None)
    _, frames = decode_video(path)
    return sum(1 for f in frames if f.rgb() is not None)


def main() -> None:
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="bench-formats-"))
    rng = np.random.default_rng(0)
    h, w = 4000, 6000
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    picture = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    dng = write_dng(tmp / "big.dng", picture)
    Image.fromarray(picture).save(tmp / "big.jpg", quality=92)
    import rawpy

    def full() -> None:
        with rawpy.imread(str(dng)) as raw:
            raw.postprocess(use_camera_wb=True, output_bps=8)

    jpeg = best(lambda: np.asarray(Image.open(tmp / "big.jpg").convert("RGB")))
    half = best(lambda: read_picture(dng))
    whole = best(full, 2)
    print(f"24 MP: JPEG (Pillow) {jpeg:.2f} s; DNG half size (rawpy, as read) {half:.2f} s "
          f"({half / jpeg:.1f}x the JPEG); DNG full size {whole:.2f} s ({whole / half:.1f}x half)")

    ff = ffmpeg_exe()
    src = "testsrc2=size=1920x1080:rate=50:duration=4"
    inter, hlg = tmp / "1080i.mts", tmp / "hlg.mov"
    subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", src, "-vf",
                    "tinterlace=mode=interleave_top,setfield=tff", "-c:v", "libx264", "-flags",
                    "+ildct+ilme", "-x264opts", "tff=1", "-preset", "ultrafast", "-f", "mpegts",
                    str(inter)], check=True)
    subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", src.replace("50", "25"), "-vf",
                    "zscale=tin=bt709:min=bt709:pin=bt709:t=arib-std-b67:m=bt2020nc:p=bt2020:"
                    "npl=203,format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
                    "-x265-params", "log-level=error:colorprim=bt2020:transfer=arib-std-b67:"
                    "colormatrix=bt2020nc", str(hlg)], check=True)
    for name, path in (("1080i50 H.264 (bwdif)", inter), ("1080p25 HLG HEVC (HDR to SDR)", hlg)):
        plain = best(lambda: decode_all(path, True), 2)
        shown = best(lambda: decode_all(path, False), 2)
        n = decode_all(path, False)
        print(f"{name}: {n} frames to RGB, plain {plain:.2f} s, shown right {shown:.2f} s "
              f"({shown / plain:.2f}x)")
    from retrieval.analysis.scan import scan_video
    from retrieval.media import probe

    sdr = tmp / "sdr.mov"
    subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", src.replace("50", "25"),
                    "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                    "-x265-params", "log-level=error", str(sdr)], check=True)

    def scan(path: Path) -> int:
        info = probe(path)
        return sum(len(s.keyframes) for s in scan_video(path, info.duration, info.fps))

    plain, mapped = best(lambda: scan(sdr), 2), best(lambda: scan(hlg), 2)
    print(f"index pass (scan_video), 4 s 1080p25 10-bit HEVC: SDR {plain:.2f} s, HLG mapped "
          f"{mapped:.2f} s ({mapped / plain:.2f}x; {scan(hlg)} keyframes mapped)")
    print("load average:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
