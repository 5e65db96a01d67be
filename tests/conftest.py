"""Shared test fixtures: tiny real clips made by ffmpeg, and a guard against logged errors."""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(
    path: Path,
    *,
    duration: float = 2.0,
    size: str = "64x36",
    rate: int = 24,
    source: str = "testsrc2",
    audio: bool = False,
) -> Path:
    """Write a real H.264 clip synthesised by ffmpeg's lavfi (``source`` e.g. "color=c=red")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = f"{source}=size={size}:rate={rate}:duration={duration}"
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", spec]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-shortest", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def make_cut_clip(path: Path, colors: list[str], *, seconds: float = 1.0, size: str = "64x36") -> Path:
    """A clip with hard cuts between flat colours (one shot per colour), for shot detection."""
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs: list[str] = []
    for c in colors:
        inputs += ["-f", "lavfi", "-i", f"color=c={c}:size={size}:rate=24:duration={seconds}"]
    concat = "".join(f"[{i}:v]" for i in range(len(colors))) + f"concat=n={len(colors)}:v=1:a=0[v]"
    cmd = [FFMPEG, "-v", "error", "-y", *inputs, "-filter_complex", concat, "-map", "[v]",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def make_still(path: Path, *, size: str = "64x36", source: str = "testsrc2") -> Path:
    """Write one real image (png/jpg by suffix) rendered by ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate=1",
           "-frames:v", "1", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def proxy(pytestconfig):
    """One proxy embedder for the session; its label cache lives in pytest's cache folder."""
    from retrieval.embed.proxy3 import ProxyEmbedder

    return ProxyEmbedder(cache_dir=pytestconfig.cache.mkdir("montage-models"), threads=1)


@pytest.fixture(autouse=True)
def _fail_on_logged_error(caplog: pytest.LogCaptureFixture):
    """A test that logs an ERROR fails, unless it asserts on that record itself."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors and not getattr(caplog, "_errors_expected", False):
        pytest.fail("logged ERROR: " + "; ".join(r.getMessage() for r in errors))


@pytest.fixture
def expect_logged_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog._errors_expected = True  # type: ignore[attr-defined]
    return caplog
