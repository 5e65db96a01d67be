"""Footage from real cameras: one real file per format the bundled ffmpeg can write (tiny
clips), pictures from Pillow, pillow-heif and a DNG written with tifffile, and a folder of files
that are not footage; every one is indexed or skipped with its reason. The camera-look tests
(interlaced, rotated, HDR, variable frame rate) are in ``test_camera_looks.py``."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.index.build import build_index
from retrieval.media import probe, read_still, sniff
from retrieval.search.footage import open_index
from tests.conftest import FFMPEG

# path -> ffmpeg output options (input: 1 s of testsrc2 at 64x36 and a 440 Hz tone)
VIDEOS = {
    "camcorder/00001.MTS": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "ac3",
                            "-f", "mpegts"],
    "camcorder/00002.m2ts": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "ac3",
                             "-f", "mpegts", "-mpegts_m2ts_mode", "1"],
    "old/home movie.mpg": ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpeg"],
    "old/VTS_01_1.VOB": ["-c:v", "mpeg2video", "-c:a", "ac3", "-f", "vob"],
    "old/broadcast.ts": ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpegts"],
    "phone/IMG_0001.m4v": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mp4"],
    "phone/old.3gp": ["-c:v", "mpeg4", "-c:a", "aac", "-ac", "1", "-ar", "8000", "-f", "3gp"],
    "web/clip.wmv": ["-c:v", "wmv2", "-c:a", "wmav2", "-f", "asf"],
    "web/clip.flv": ["-c:v", "flv1", "-c:a", "libmp3lame", "-ar", "44100", "-f", "flv"],
    "web/clip.ogv": ["-c:v", "libtheora", "-c:a", "libvorbis", "-f", "ogg"],
    "pro/clip.mxf": ["-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-ar", "48000", "-f", "mxf"],
    "mystery.bin": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4"],  # no telling name
}
STILLS = ["scans/page.tif", "scans/page.bmp", "scans/logo.gif", "photos/photo.avif",
          "photos/IMG_0002.HEIC", "photos/raw.dng", "photos/picture.dat"]
# the folder of files that are not footage: path -> why each must be skipped
SKIPPED = {
    "paperwork/notes.pdf": "not media", "paperwork/archive.zip": "not media",
    "paperwork/readme.nfo": "not media", "paperwork/subs.srt": "not media",
    "paperwork/voice.m4a": "audio only", "paperwork/song.wav": "audio only",
    "paperwork/broken.mts": "unreadable", "paperwork/empty.mov": "zero length",
    "paperwork/weird.avi": "unsupported codec",
}
OTHER_VIDEOS = ["tape/dv.dv", "web/anim.gif"]


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True)


def _pattern(h: int = 36, w: int = 64) -> np.ndarray:
    """A picture whose orientation shows: red top-left corner, green bottom-right, blue rest."""
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (30, 60, 200)
    img[: h // 3, : w // 4] = (220, 30, 30)
    img[-h // 3:, -w // 4:] = (30, 200, 60)
    return img


def write_dng(path: Path, rgb: np.ndarray) -> Path:
    """A minimal real DNG: the picture mosaiced to an RGGB Bayer pattern (12 bits), with the
    tags a raw developer needs (CFA pattern, levels, an identity colour matrix)."""
    import tifffile

    x = rgb.astype(np.float32) / 255 * 4000
    cfa = np.zeros(rgb.shape[:2], np.uint16)
    cfa[0::2, 0::2] = x[0::2, 0::2, 0]
    cfa[0::2, 1::2] = x[0::2, 1::2, 1]
    cfa[1::2, 0::2] = x[1::2, 0::2, 1]
    cfa[1::2, 1::2] = x[1::2, 1::2, 2]
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
            (50708, "s", 0, "montage test camera", True), (33421, "H", 2, (2, 2), True),
            (33422, "B", 4, (0, 1, 1, 2), True), (50717, "I", 1, 4095, True),
            (50714, "H", 1, 0, True), (50778, "H", 1, 21, True),
            (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
            (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, cfa, photometric=32803, extratags=tags)
    return path


def _unsupported_avi(path: Path) -> None:
    """A real AVI whose video codec tag no decoder knows (an MPEG-4 file with its FourCC
    changed, as a camera maker's private codec looks to ffmpeg)."""
    tmp = path.with_suffix(".tmp.avi")
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36:rate=10:duration=0.5", "-c:v", "mpeg4",
            "-f", "avi", str(tmp))
    path.write_bytes(tmp.read_bytes().replace(b"FMP4", b"ZQ9X"))
    tmp.unlink()


def make_formats_library(root: Path) -> Path:
    src = ["-f", "lavfi", "-i", "testsrc2=size=64x36:rate=25:duration=1",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=48000"]
    for rel, opts in VIDEOS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        _ffmpeg(*src, *opts, str(root / rel))
    (root / "tape").mkdir()
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25:duration=0.2", "-f", "lavfi",
            "-i", "sine=duration=0.2:sample_rate=48000", "-c:v", "dvvideo", "-pix_fmt", "yuv420p",
            "-c:a", "pcm_s16le", "-ac", "2", "-f", "dv", str(root / "tape/dv.dv"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36:rate=10:duration=1", "-f", "gif",
            str(root / "web/anim.gif"))
    (root / "scans").mkdir()
    (root / "photos").mkdir()
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36", "-frames:v", "1", str(root / "scans/page.tif"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36", "-frames:v", "1", str(root / "scans/page.bmp"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36", "-frames:v", "1", "-f", "gif",
            str(root / "scans/logo.gif"))
    pattern = Image.fromarray(_pattern())
    pattern.save(root / "photos/photo.avif", quality=90)
    import pillow_heif

    pillow_heif.register_heif_opener()
    pattern.save(root / "photos/IMG_0002.HEIC", format="HEIF", quality=90)
    write_dng(root / "photos/raw.dng", _pattern())
    pattern.save(root / "photos/picture.dat", format="PNG")  # a picture under no telling name
    # the library's notes and hidden files are neither footage nor skips
    (root / "camcorder/00001.MTS.txt").write_text("the beach at dawn", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + os.urandom(64))
    # files that are not footage
    junk = root / "paperwork"
    junk.mkdir()
    (junk / "notes.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n")
    import zipfile

    with zipfile.ZipFile(junk / "archive.zip", "w") as z:
        z.writestr("a.txt", "hello")
    (junk / "readme.nfo").write_text("ANSI art release notes\n", encoding="utf-8")
    (junk / "subs.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n", encoding="utf-8")
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(junk / "voice.m4a"))
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", str(junk / "song.wav"))
    (junk / "broken.mts").write_bytes(os.urandom(3000))
    (junk / "empty.mov").write_bytes(b"")
    _unsupported_avi(junk / "weird.avi")
    return root


@pytest.fixture(scope="module")
def formats(tmp_path_factory, proxy):
    """The library, indexed once (in this process: a small library needs no workers)."""
    root = make_formats_library(tmp_path_factory.mktemp("formats"))
    report = build_index(root, proxy, progress=False, workers=0)
    return root, report


def test_every_format_the_decoder_reads_is_indexed(formats) -> None:
    root, report = formats
    indexed = {s.path: s for s in open_index(root).shots}
    assert set(indexed) == set(VIDEOS) | set(STILLS) | set(OTHER_VIDEOS)
    assert report.files_indexed == len(indexed) == 21
    kinds = {p: s.kind for p, s in indexed.items()}
    assert kinds["web/anim.gif"] == "video" and kinds["scans/logo.gif"] == "still"
    assert kinds["mystery.bin"] == "video" and kinds["photos/picture.dat"] == "still"
    assert all(kinds[p] == "video" for p in [*VIDEOS, *OTHER_VIDEOS])
    assert all(kinds[p] == "still" for p in STILLS)
    for p in VIDEOS:  # the whole second of each, whatever its container says of its length
        assert indexed[p].end == pytest.approx(1.0, abs=0.15), p
    assert (indexed["tape/dv.dv"].width, indexed["tape/dv.dv"].height) == (720, 576)
    assert (indexed["photos/IMG_0002.HEIC"].width, indexed["photos/IMG_0002.HEIC"].height) == (64, 36)


def test_the_summary_counts_and_names_every_skip_with_its_reason(formats, capsys) -> None:
    root, report = formats
    assert dict((p, r.split(": ")[0]) for p, r in report.files_skipped) == SKIPPED
    assert report.files_total == 21 + len(SKIPPED)  # notes and hidden files are not counted
    from montage.cli import main

    assert main(["index", str(root), "--quiet", "--embedder", report.embedder]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert ("skipped 9 (4 not media, 2 audio only, 1 unreadable, 1 zero length, "
            "1 unsupported codec)") in head
    for path, why in SKIPPED.items():
        assert f"  skipped {path}: {why}" in out
    assert "00001.MTS.txt" not in out and ".DS_Store" not in out and ".montage" not in out
    assert main(["index", str(root), "--quiet", "--json", "--embedder", report.embedder]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {f["path"]: f["why"] for f in data["skipped"]} == SKIPPED
    assert data["skipped_counts"] == {"not media": 4, "audio only": 2, "unreadable": 1,
                                      "zero length": 1, "unsupported codec": 1}
    assert data["reused"] == 21 and data["indexed"] == 0


def test_a_file_looked_at_once_is_remembered_until_it_changes(formats, proxy, tmp_path,
                                                               monkeypatch) -> None:
    import shutil

    import retrieval.index.build as build

    root = tmp_path / "lib"
    shutil.copytree(formats[0], root)  # mtimes kept: the index is current
    seen: list[str] = []

    def index():
        return build_index(root, proxy, progress=False, workers=0,
                           on_file=lambda p, done, total: seen.append(p))

    again = index()
    assert seen == [] and again.files_skipped == formats[1].files_skipped
    # an edited document is looked at again, alone
    (root / "paperwork/notes.pdf").write_bytes(b"%PDF-1.5\n% edited\n")
    index()
    assert seen == ["paperwork/notes.pdf"]
    # a file whose codec no reader knew is tried again once the readers change
    from retrieval.index import run

    for module in (build, run):  # what the plan compares and what the commit writes
        monkeypatch.setattr(module, "readers_signature", lambda: "av 99; a new reader")
    seen.clear()
    index()
    assert seen == ["paperwork/weird.avi"]
    seen.clear()
    assert index().files_skipped == formats[1].files_skipped and seen == []


def test_content_decides_what_a_file_is(formats) -> None:
    root, _ = formats
    assert sniff(root / "web/anim.gif") == "video" and sniff(root / "scans/logo.gif") == "still"
    assert sniff(root / "mystery.bin") == "video" and sniff(root / "photos/raw.dng") == "still"
    from retrieval.media import SkippedMedia

    with pytest.raises(SkippedMedia) as err:
        sniff(root / "paperwork/readme.nfo")  # ffmpeg would draw it as ANSI art
    assert err.value.why == "not media"


def test_pictures_read_upright_in_every_format(formats, tmp_path) -> None:
    root, _ = formats
    want = _pattern().astype(int)
    for rel in ("photos/photo.avif", "photos/IMG_0002.HEIC", "photos/picture.dat"):
        got = read_still(root / rel).astype(int)
        assert got.shape == want.shape and np.abs(got - want).mean() < 12, rel
    raw = read_still(root / "photos/raw.dng")  # developed at half size
    assert raw.shape == (18, 32, 3)
    assert raw[1, 1, 0] > raw[1, 1, 2] and raw[-2, -2, 1] > raw[-2, -2, 0]  # red corner, green one
    assert raw[9, 12, 2] > raw[9, 12, 0]  # blue in between
    # EXIF orientation is applied for AVIF too (a phone's portrait picture)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pattern()).save(tmp_path / "turned.avif", exif=exif)
    assert read_still(tmp_path / "turned.avif").shape == (64, 36, 3)
    assert probe(tmp_path / "turned.avif").width == 36


def test_every_video_format_renders(formats, tmp_path) -> None:
    """One clip of each video format in one film: ffmpeg renders what the index took."""
    from fractions import Fraction

    import av

    from montage.film import render_timeline, write_timeline
    from montage.optimize import EditDecision, EditDecisionList

    root, _ = formats
    names = [*VIDEOS, *OTHER_VIDEOS, "photos/IMG_0002.HEIC", "photos/raw.dng", "scans/page.tif"]
    decisions = tuple(
        EditDecision(f"s{i}", name, "library", "still" if name in STILLS else "video",
                     str(root / name), 2, 5, 0.5) for i, name in enumerate(names))
    edl = EditDecisionList(Fraction(25), 64, 36, decisions)
    film = render_timeline(write_timeline(edl, tmp_path / "edit.otio"), tmp_path / "film.mp4")
    with av.open(str(film)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 5 * len(names)
    assert all(f.std() > 20 for f in frames[::5]), "every clip shows its picture"


def test_the_film_report_names_the_files_not_used(tmp_path) -> None:
    from montage.cli import main
    from tests.conftest import make_clip

    lib = tmp_path / "lib"
    make_clip(lib / "beach.MTS", duration=1.5)
    (lib / "shot list.pdf").write_bytes(b"%PDF-1.4\n")
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(lib / "voice memo.m4a"))
    script = tmp_path / "story.txt"
    script.write_text("Waves roll onto the beach.", encoding="utf-8")
    assert main(["make", str(script), "--library", str(lib), "--out", str(tmp_path / "f.mp4"),
                 "--size", "64x36", "--threshold", "0", "--quiet"]) == 0
    report = (tmp_path / "f.montage" / "report.md").read_text(encoding="utf-8")
    assert "2 files not used (1 not media, 1 audio only)" in report
    assert "## Library files not used" in report
    assert "| `shot list.pdf` | not media |" in report and "| `voice memo.m4a` | audio only |" in report
