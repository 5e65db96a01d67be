"""Shared test fixtures: tiny real clips made by ffmpeg, the small footage library the film
tests cut from, the model cache, and a guard against logged errors."""
from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
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


CARD_AND_BARS = {"card.png": "testsrc2", "bars.png": "smptebars"}


def make_footage(root: Path, colors: Sequence[str], *, seconds: float = 2.0, pattern: float = 4.0,
                 audio: bool = False, size: str = "64x36",
                 stills: Mapping[str, str] = CARD_AND_BARS, still_size: str | None = None) -> Path:
    """The small footage library the film tests cut from, under ``root``: ``colors.mp4`` (hard
    cuts between flat ``colors``, one shot of ``seconds`` each), ``pattern.mp4`` (a moving test
    pattern of ``pattern`` seconds, with a tone when ``audio``) and ``stills`` (relative path ->
    lavfi source), all ``size`` (stills ``still_size`` when given)."""
    make_cut_clip(root / "colors.mp4", list(colors), seconds=seconds, size=size)
    make_clip(root / "pattern.mp4", duration=pattern, size=size, audio=audio)
    for name, source in stills.items():
        make_still(root / name, size=still_size or size, source=source)
    return root


@pytest.fixture(autouse=True, scope="session")
def _own_model_store(tmp_path_factory):
    """No test sees the models this machine's user pulled (or their catalogue file): every
    test (and every process it starts) gets an empty model store and hub cache of its own."""
    import os

    base = tmp_path_factory.mktemp("model-store")
    saved = {k: os.environ.get(k) for k in ("MONTAGE_MODELS_HOME", "MONTAGE_MODELS_FILE",
                                            "HF_HUB_CACHE")}
    os.environ.update(MONTAGE_MODELS_HOME=str(base / "home"),
                      MONTAGE_MODELS_FILE=str(base / "none.toml"),
                      HF_HUB_CACHE=str(base / "hf-cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Tiny real-architecture models as hub repositories (tests/models_kit.py)."""
    from tests.models_kit import build_repos

    return build_repos(tmp_path_factory.mktemp("repos"))


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    """A Hugging Face Hub on loopback serving ``repos``, and this test's machine pointed at it
    (its own hub cache, model records and catalogue file with entries for the repos)."""
    from tests.hubserver import Hub
    from tests.models_kit import model_env

    with Hub() as h:
        for r in repos.values():
            h.add(r)
        for k, v in model_env(tmp_path, h, repos).items():
            monkeypatch.setenv(k, v)
        yield h


@pytest.fixture(scope="session")
def model_cache(pytestconfig, tmp_path_factory) -> Path:
    """Where the session's models keep their caches (label vectors, exported ONNX): pytest's
    cache folder, so later runs start warm, or a session folder when the cache plugin is off
    (``-p no:cacheprovider``)."""
    cache = getattr(pytestconfig, "cache", None)
    if cache is not None:
        return cache.mkdir("montage-models")
    return tmp_path_factory.mktemp("montage-models")


@pytest.fixture(scope="session")
def proxy(model_cache):
    """One proxy embedder for the session; its label cache lives in the model cache."""
    from retrieval.embed.proxy3 import ProxyEmbedder

    return ProxyEmbedder(cache_dir=model_cache, threads=1)


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
