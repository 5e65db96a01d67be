"""What cameras write, shown right in the analysis and in the film: an interlaced clip (no combing
on a rendered frame), a phone's rotated clip (upright, as ffmpeg's own autorotate turns it), a
10-bit HDR clip (not washed out), a variable frame rate clip (sound in sync). Each clip is a real
encoding made by the bundled ffmpeg; each check is measured on decoded frames, against the same
measure of the picture shown wrong, so it can fail.

Set MONTAGE_LOOK_PNGS to a folder to keep the rendered frames looked at as PNGs."""
from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from montage.film import render_timeline, write_timeline
from montage.optimize import EditDecision, EditDecisionList
from retrieval.analysis.analyse import Settings, analyse_file
from retrieval.media import look_of, probe, read_frames
from tests.conftest import FFMPEG

W, H, RATE = 128, 72, Fraction(25)


def _ffmpeg(*args: str) -> None:
    done = subprocess.run([FFMPEG, "-v", "error", "-y", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-600:]


def _ffmpeg_has(kind: str, name: str) -> bool:
    out = subprocess.run([FFMPEG, "-hide_banner", f"-{kind}"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def comb(rgb: np.ndarray) -> float:
    """Combing: how much more neighbouring lines (one from each field) differ than lines two
    apart (the same field). About 1 or less for a progressive picture; well above 1 where the
    two fields show a moving edge at two places."""
    y = rgb.astype(np.float64).mean(axis=2)
    adjacent = np.abs(y[1:-1] - y[:-2]) + np.abs(y[1:-1] - y[2:])
    same_field = np.abs(y[2:] - y[:-2])
    return float(adjacent.mean() / 2 / (same_field.mean() + 1e-9))


def saturation(rgb: np.ndarray) -> float:
    return float(np.asarray(Image.fromarray(rgb).convert("HSV"))[..., 1].mean())


def keep_png(name: str, rgb: np.ndarray) -> None:
    folder = os.environ.get("MONTAGE_LOOK_PNGS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        big = Image.fromarray(rgb).resize((rgb.shape[1] * 4, rgb.shape[0] * 4), Image.NEAREST)
        big.save(Path(folder) / f"{name}.png")


def upright_pattern(path: Path) -> Path:
    """A portrait picture whose orientation shows (red top-left, green bottom-right)."""
    img = np.zeros((64, 36, 3), np.uint8)
    img[...] = (30, 60, 200)
    img[:20, :12] = (220, 30, 30)
    img[-20:, -12:] = (30, 200, 60)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("looks")
    out: dict[str, Path] = {}
    # 1080i as a camcorder writes it, at 128x72: 50 pictures a second woven into 25 frames
    # of two fields each (top first), H.264 coded interlaced in MPEG-TS (AVCHD's .MTS)
    moving = ("color=c=0x303030:size=128x72:rate=50:duration=1.2[bg];"
              "color=c=white:size=24x56:rate=50[box];"
              "[bg][box]overlay=x='mod(n*6\\,96)':y=8:shortest=1[out0]")
    out["interlaced"] = root / "00001.MTS"
    _ffmpeg("-f", "lavfi", "-i", moving, "-vf", "tinterlace=mode=interleave_top,setfield=tff",
            "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264opts", "tff=1", "-pix_fmt",
            "yuv420p", "-f", "mpegts", str(out["interlaced"]))
    # a phone's portrait clip: stored sideways, with a display matrix saying turn it back
    still = upright_pattern(root / "upright.png")
    sideways = root / "sideways.mp4"
    _ffmpeg("-loop", "1", "-i", str(still), "-t", "1", "-r", "25", "-vf", "transpose=clock",
            "-c:v", "libx264", "-pix_fmt", "yuv444p", "-crf", "0", str(sideways))
    for angle in (90, 180, 270):
        out[f"rotated{angle}"] = root / f"rotated{angle}.mp4"
        _ffmpeg("-display_rotation", str(angle), "-i", str(sideways), "-c", "copy",
                str(out[f"rotated{angle}"]))
    out["mirrored"] = root / "mirrored.mp4"
    _ffmpeg("-display_rotation", "90", "-display_hflip", "-i", str(sideways), "-c", "copy",
            str(out["mirrored"]))
    out["sdr"] = root / "sdr.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=25:duration=1", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-crf", "12", str(out["sdr"]))
    if _ffmpeg_has("encoders", "libx265") and _ffmpeg_has("filters", "zscale"):
        # HLG as recent phones write it: 10-bit HEVC, BT.2020, the SDR picture mapped by
        # libzimg (HDR reference white at 203 cd/m2, BT.2408)
        for transfer in ("arib-std-b67", "smpte2084"):
            out[transfer] = root / f"hdr-{transfer}.mov"
            _ffmpeg("-i", str(out["sdr"]), "-vf",
                    f"zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={transfer}:m=bt2020nc:p=bt2020"
                    ":r=tv:npl=203,format=yuv420p10le",
                    "-c:v", "libx265", "-x265-params",
                    f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc",
                    "-tag:v", "hvc1", str(out[transfer]))
    return out


def render(tmp: Path, decisions: list[tuple[str, Path, int, int]], size=(W, H), rate=RATE):
    """Render clips (name, media, first frame, frames) into one film; its frames by clip."""
    edl = EditDecisionList(rate, size[0], size[1], tuple(
        EditDecision(name, name, "library", "video", str(media), first, n, 0.5)
        for name, media, first, n in decisions))
    film = render_timeline(write_timeline(edl, tmp / "edit.otio"), tmp / "film.mp4")
    with av.open(str(film)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    out, at = {}, 0
    for name, _, _, n in decisions:
        out[name] = frames[at:at + n]
        at += n
    return out


def plain_frames(path: Path) -> list[np.ndarray]:
    """Every frame as a plain decode shows it (no look: what montage did before)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# -- interlaced ---------------------------------------------------------------------------------
def test_an_interlaced_clip_is_deinterlaced_when_analysed_and_rendered(clips, tmp_path) -> None:
    path = clips["interlaced"]
    look = look_of(path)
    assert look.deinterlace == "tff" and look.filters()[0][0] == "bwdif"
    raw = plain_frames(path)[10]
    film = render(tmp_path, [("i", path, 5, 15)])["i"]
    shown = read_frames(path, [0.4])[0]
    keep_png("interlaced-plain-decode", raw)
    keep_png("interlaced-rendered", film[5])
    assert comb(raw) > 3.0, "the source itself combs (the measure can tell)"
    assert comb(shown) < 1.2, "the analysis sees whole frames"
    assert max(comb(f) for f in film) < 1.2, "no rendered frame combs"
    analysis = analyse_file(str(path.parent), path.name, "video", Settings(27.0, 0.4))
    assert not analysis.error and max(comb(f) for f in analysis.frames) < 1.2


def test_a_50_fps_film_keeps_every_field(clips, tmp_path) -> None:
    look = look_of(clips["interlaced"])
    assert "mode=send_frame" in look.chain(25.0) and "mode=send_field" in look.chain(50.0)
    film = render(tmp_path, [("i", clips["interlaced"], 10, 20)], rate=Fraction(50))["i"]
    xs = [int(np.argmax(f[36, :, 0] > 128)) for f in film]  # the box's left edge, frame by frame
    steps = np.diff(xs)
    assert max(comb(f) for f in film) < 1.2
    assert np.median(steps) == pytest.approx(6, abs=1)  # it moves every field, as filmed


# -- rotation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rotated90", "rotated180", "rotated270", "mirrored"])
def test_a_rotated_clip_is_turned_as_ffmpeg_turns_it(clips, name) -> None:
    """The analysis turns a clip exactly as ffmpeg's autorotate (what players and the render
    did before) does, flips included."""
    out = subprocess.run([FFMPEG, "-v", "error", "-i", str(clips[name]), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                         check=True).stdout
    info = probe(clips[name])
    autorotated = np.frombuffer(out, np.uint8).reshape(info.height, info.width, 3)
    turned = read_frames(clips[name], [0.0])[0]
    assert turned.shape == autorotated.shape
    assert np.abs(turned.astype(int) - autorotated.astype(int)).mean() < 2


def test_a_rotated_clip_is_analysed_and_rendered_upright(clips, tmp_path) -> None:
    path = clips["rotated90"]
    info = probe(path)
    assert (info.width, info.height) == (36, 64)  # upright: portrait
    upright = np.asarray(Image.open(path.parent / "upright.png").convert("RGB")).astype(int)
    shown = read_frames(path, [0.5])[0].astype(int)
    assert np.abs(shown - upright).mean() < 6
    analysis = analyse_file(str(path.parent), path.name, "video", Settings(27.0, 0.4))
    assert (analysis.width, analysis.height) == (36, 64) and analysis.frames[0].shape == (64, 36, 3)
    film = render(tmp_path, [("r", path, 0, 10)], size=(72, 128))["r"]
    keep_png("rotated-rendered", film[5])
    small = np.asarray(Image.fromarray(upright.astype(np.uint8)).resize((72, 128))).astype(int)
    assert np.abs(film[5].astype(int) - small).mean() < 10, "upright, filling the portrait film"
    red_top_left = film[5][10, 10].astype(int)
    assert red_top_left[0] > 150 and red_top_left[2] < 100


# -- HDR ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("transfer", ["arib-std-b67", "smpte2084"])
def test_an_hdr_clip_is_not_washed_out(clips, tmp_path, transfer) -> None:
    if transfer not in clips:
        pytest.skip("the bundled ffmpeg has no libx265 or zscale to write a 10-bit HDR clip")
    path = clips[transfer]
    look = look_of(path)
    assert look.transfer == transfer and look.primaries == "bt2020"
    films = render(tmp_path, [("hdr", path, 5, 5), ("sdr", clips["sdr"], 5, 5)])
    hdr, sdr = films["hdr"][2], films["sdr"][2]
    washed = plain_frames(path)[7]  # read as SDR: what montage showed before
    keep_png(f"hdr-{transfer}-rendered", hdr)
    keep_png(f"hdr-{transfer}-sdr-source", sdr)
    keep_png(f"hdr-{transfer}-plain-decode", washed)
    # measured (docs/footage.md): read as SDR, HLG keeps 0.61 of the source's saturation and
    # PQ 0.47; mapped, 0.72 and 0.82; the bounds sit between
    assert saturation(washed) < 0.66 * saturation(sdr), "read as SDR it is washed out"
    assert saturation(hdr) > 1.1 * saturation(washed) and saturation(hdr) > 0.68 * saturation(sdr)
    assert hdr.std() > 1.25 * washed.std() and hdr.std() > 0.7 * sdr.std(), "contrast kept"
    assert np.abs(hdr.astype(int) - sdr.astype(int)).mean() < \
        0.75 * np.abs(washed.astype(int) - sdr.astype(int)).mean()
    # the analysis sees the film's picture: the same filters in PyAV
    shown = read_frames(path, [0.28])[0]
    assert np.abs(shown.astype(int) - hdr.astype(int)).mean() < 6


# -- variable frame rate ------------------------------------------------------------------------
def test_a_variable_frame_rate_clip_keeps_sound_in_sync(tmp_path) -> None:
    """A phone-style VFR clip (frames 60 ms apart, then 20 ms) with a white flash and a beep
    at 1.0-1.12 s; cut in at 0.4 s, the film shows the flash when it plays the beep."""
    src = tmp_path / "vfr.mp4"
    video = ("color=c=black:size=64x36:rate=50:duration=2,"
             "drawbox=x=0:y=0:w=64:h=36:color=white:t=fill:enable='between(t,1,1.12)',"
             "select='lt(t\\,0.8)*not(mod(n\\,3))+gte(t\\,0.8)'")
    audio = "sine=frequency=1000:duration=2:sample_rate=48000,volume='between(t,1,1.12)':eval=frame"
    _ffmpeg("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-fps_mode", "vfr",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src))
    with av.open(str(src)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    gaps = np.round(np.diff(times), 3)
    assert {0.06, 0.02} <= set(gaps.tolist()), "the clip is variable frame rate"
    edl = EditDecisionList(RATE, 64, 36, (EditDecision("v", "v", "library", "video", str(src),
                                                       10, 30, 0.5),))
    film = render_timeline(write_timeline(edl, tmp_path / "edit.otio"), tmp_path / "film.mp4")
    with av.open(str(film)) as c:
        bright = [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]
    with av.open(str(film)) as c:
        sound = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
    flash = next(i for i, b in enumerate(bright) if b > 128) / float(RATE)
    loud = np.abs(sound) > 0.03
    assert loud.any(), "the beep is heard"
    beep = int(np.argmax(loud)) / 48000
    assert flash == pytest.approx(0.6, abs=0.041) and beep == pytest.approx(0.6, abs=0.03)
    assert abs(flash - beep) < 1 / float(RATE) + 0.01


# -- seeking in MPEG-TS -------------------------------------------------------------------------
def test_an_mpeg_ts_clip_starts_on_its_in_point(tmp_path) -> None:
    """AVCHD is H.264 in MPEG-TS, which has no seek index: ffmpeg's seek lands on any packet
    and drops the frames up to the next keyframe (this clip started 9 frames late). The
    render seeks one keyframe interval early and trims to the exact frame."""
    src = tmp_path / "00003.MTS"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=25:duration=3", "-c:v", "libx264",
            "-g", "12", "-pix_fmt", "yuv420p", "-crf", "10", "-f", "mpegts", str(src))
    assert look_of(src).seek_back == pytest.approx(12 / 25 + 2 / 25, abs=0.01)
    source = [f.astype(int) for f in plain_frames(src)]
    film = render(tmp_path, [("a", src, 15, 3), ("b", src, 32, 3)])
    for name, first in (("a", 15), ("b", 32)):
        errors = [np.abs(film[name][0].astype(int) - f).mean() for f in source]
        assert int(np.argmin(errors)) == first, f"clip {name} starts on frame {first}"
    shown = read_frames(src, [0.6, 1.28])  # the analysis' seeks land right too
    assert [int(np.argmin([np.abs(s.astype(int) - f).mean() for f in source]))
            for s in shown] == [15, 32]
