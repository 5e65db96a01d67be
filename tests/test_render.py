"""Rendering an .otio edit with the real ffmpeg, checked by decoding the film with PyAV."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from tests.conftest import FFMPEG, make_clip, make_cut_clip, make_still

from montage.optimize import EditDecision, EditDecisionList
from retrieval.media.ffmpeg import count_video_frames, ffmpeg_exe, run_ffmpeg
from montage.film import render_timeline, write_timeline
from planner.errors import RenderError

W, H, RATE = 128, 72, Fraction(24)


def _d(shot: str, kind: str, media: Path | str, source_in: int, frames: int) -> EditDecision:
    source = "placeholder" if kind == "card" else "library"
    return EditDecision(shot, f"text of {shot}", source, kind, str(media), source_in, frames, 0.5)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    return {
        "wide43": make_clip(root / "four_three.mp4", size="64x48", audio=True),
        "cuts": make_cut_clip(root / "cuts.mp4", ["red", "lime", "blue"]),
        "still": make_still(root / "still.png", size="96x54"),
    }


@pytest.fixture(scope="module")
def film(media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """2 clips + 1 still + 1 card (+ a 2-frame trim across a cut), rendered once."""
    out = tmp_path_factory.mktemp("film")
    edl = EditDecisionList(RATE, W, H, (
        _d("s1", "video", media["wide43"], 6, 18),
        _d("s2", "video", media["cuts"], 24, 12),  # starts exactly on the red->lime cut
        _d("s3", "still", media["still"], 0, 24),
        _d("s4", "card", "", 0, 24),
        _d("s5", "video", media["cuts"], 47, 2),  # the last lime frame, then the first blue one
    ))
    otio = write_timeline(edl, out / "edit.otio")
    path = render_timeline(otio, out / "film.mp4", workdir=out / "work")
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    return edl, path, frames


def _colour(px: np.ndarray) -> str:
    r, g, b = px[H // 2 - 4:H // 2 + 4, W // 2 - 4:W // 2 + 4].reshape(-1, 3).mean(axis=0)
    return {0: "red", 1: "lime", 2: "blue"}[int(np.argmax([r, g, b]))]


def test_film_streams_size_and_length(film) -> None:
    edl, path, frames = film
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (W, H)
        assert a.codec_context.name == "aac"
        assert a.codec_context.sample_rate == 48000 and a.codec_context.channels == 2
        assert v.average_rate == RATE
        video_s = float(v.duration * v.time_base)
        audio_s = float(a.duration * a.time_base)
    assert len(frames) == edl.frames == 80
    assert video_s == pytest.approx(edl.seconds, abs=1e-3)
    assert audio_s == pytest.approx(edl.seconds, abs=0.03), "sound stays in sync with picture"
    assert not list(path.parent.glob(".*partial"))


def test_frames_are_evenly_spaced(film) -> None:
    _, path, _ = film
    with av.open(str(path)) as c:
        pts = [f.pts for f in c.decode(video=0)]
    assert len(set(np.diff(pts))) == 1, "constant frame rate across every cut"


def test_letterbox_keeps_bars_black(film) -> None:
    _, _, frames = film
    first = frames[0]  # 64x48 (4:3) in a 128x72 frame: 96x72 picture, 16 px bars
    assert first[:, :12].max() < 24 and first[:, -12:].max() < 24
    assert first[:, 20:108].mean() > 40, "the picture itself is not black"


def test_trim_is_frame_accurate(film) -> None:
    edl, _, frames = film
    start = edl.starts()
    assert _colour(frames[start[1]]) == "lime" and _colour(frames[start[1] + 11]) == "lime"
    assert _colour(frames[start[4]]) == "lime" and _colour(frames[start[4] + 1]) == "blue"


def test_still_moves_and_card_is_drawn(film) -> None:
    edl, _, frames = film
    s3, s4 = edl.starts()[2], edl.starts()[3]
    first, last = frames[s3], frames[s3 + 23]
    assert np.abs(first - last).mean() > 5, "Ken Burns: the still pans"
    assert first.mean() > 40 and last.mean() > 40, "the still covers the frame"
    card = frames[s4]
    assert np.median(card) < 50, "dark card background"
    assert (card[20:, :].min(axis=-1) > 100).sum() > 30, "light text on the card"
    assert np.abs(frames[s4] - frames[s4 + 23]).mean() < 2, "the card is static"


def test_portrait_still_is_letterboxed_whole(tmp_path: Path) -> None:
    tall = tmp_path / "tall.png"
    Image.new("RGB", (36, 64), "white").save(tall)
    otio = write_timeline(EditDecisionList(RATE, W, H, (_d("p", "still", tall, 0, 12),)),
                          tmp_path / "e.otio")
    out = render_timeline(otio, tmp_path / "film.mp4")
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert len(frames) == 12
    heights = []
    for px in (frames[0], frames[-1]):
        assert px[:, :30].max() < 24 and px[:, -30:].max() < 24, "bars beside a portrait still"
        rows, cols = np.nonzero(px.min(axis=-1) > 128)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        # nothing of the picture is cut off: what shows keeps the still's 36:64 shape
        assert w / h == pytest.approx(36 / 64, rel=0.15)
        assert abs(cols.min() - (W - 1 - cols.max())) <= 2, "centred"
        heights.append(h)
    assert heights[0] < heights[1] <= H, "a slow zoom in, ending with the whole still in frame"


def test_sound_follows_the_trim(tmp_path: Path) -> None:
    """A tone sounds from 1.0 s to 2.0 s of the source; trimmed in at 0.75 s, it must start
    0.25 s into the film, after a silent title card keeps its own silence."""
    src = tmp_path / "tone.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:size=64x36:rate=24:duration=3", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=3,volume='between(t,1,2)':eval=frame",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
                    str(src)], check=True, capture_output=True)
    edl = EditDecisionList(RATE, W, H, (_d("card", "card", "", 0, 12),
                                        _d("tone", "video", src, 18, 48)))
    out = render_timeline(write_timeline(edl, tmp_path / "e.otio"), tmp_path / "f.mp4")
    with av.open(str(out)) as c:
        pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])  # fltp: left
    loud = np.nonzero(np.abs(pcm) > 0.05)[0] / 48000
    assert loud.size, "the source's own sound is kept"
    assert loud.min() == pytest.approx(0.5 + 0.25, abs=0.03)  # card 0.5 s + 0.25 s of silence
    assert loud.max() == pytest.approx(0.5 + 1.25, abs=0.03)
    assert pcm.size / 48000 == pytest.approx(edl.seconds, abs=0.03)


def test_hand_edited_timeline_is_what_renders(media: dict[str, Path], tmp_path: Path) -> None:
    edl = EditDecisionList(RATE, W, H, (_d("a", "video", media["cuts"], 0, 10),))
    otio = write_timeline(edl, tmp_path / "e.otio")
    data = json.loads(otio.read_text(encoding="utf-8"))
    clip = data["tracks"]["children"][0]["children"][0]
    clip["source_range"]["start_time"]["value"] = 50  # into the blue shot
    clip["source_range"]["duration"]["value"] = 5
    otio.write_text(json.dumps(data), encoding="utf-8")
    out = render_timeline(otio, tmp_path / "film.mp4")
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert len(frames) == 5 and _colour(frames[0]) == "blue"


def test_relative_and_odd_media_names(tmp_path: Path) -> None:
    odd = make_cut_clip(tmp_path / "media" / "-odd:name 100%.mp4", ["red", "blue"])
    otio = write_timeline(EditDecisionList(RATE, W, H, (_d("a", "video", odd, 30, 4),)),
                          tmp_path / "e.otio")
    data = json.loads(otio.read_text(encoding="utf-8"))
    clip = data["tracks"]["children"][0]["children"][0]
    ref = clip["media_references"][clip["active_media_reference_key"]]
    ref["target_url"] = "media/-odd:name 100%.mp4"  # relative to the .otio file
    otio.write_text(json.dumps(data), encoding="utf-8")
    out = render_timeline(otio, tmp_path / "film.mp4")
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert len(frames) == 4 and _colour(frames[0]) == "blue"


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode("utf-8", "replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_ffmpeg_is_killed_on_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "endless-marker.nut"
    with pytest.raises(RenderError, match="longer than"):
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=24", "-f", "nut",
                    str(marker)], what="an endless encode", timeout=0.5)
    assert _processes_mentioning(str(marker)) == []


def test_progress_lines(media: dict[str, Path], tmp_path: Path, capsys) -> None:
    edl = EditDecisionList(RATE, W, H, (_d("a", "video", media["cuts"], 0, 3),
                                        _d("b", "card", "", 0, 3)))
    render_timeline(write_timeline(edl, tmp_path / "e.otio"), tmp_path / "f.mp4", progress=True)
    err = capsys.readouterr().err
    assert "clip 2/2 encoded" in err and "joining 2 clips" in err


def _assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*")), "no partial file left behind"


def test_missing_media_fails_before_encoding(media: dict[str, Path], tmp_path: Path,
                                              capsys) -> None:
    edl = EditDecisionList(RATE, W, H, (_d("ok", "video", media["cuts"], 0, 5),
                                        _d("gone", "video", tmp_path / "gone.mp4", 0, 5)))
    otio = write_timeline(edl, tmp_path / "e.otio")
    out, work = tmp_path / "out" / "film.mp4", tmp_path / "work"
    with pytest.raises(RenderError, match=r"e\.otio: clip 1 \(shot gone\).*gone\.mp4"):
        render_timeline(otio, out, workdir=work, progress=True)
    _assert_nothing_left(out)
    assert "encoded" not in capsys.readouterr().err  # not even the good clip 0 was encoded
    assert not list(work.glob("*")), "a kept work folder holds no segment"


def test_corrupt_media_fails_cleanly(media: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    edl = EditDecisionList(RATE, W, H, (_d("ok", "video", media["cuts"], 0, 5),
                                        _d("bad", "video", bad, 0, 5)))
    out = tmp_path / "film.mp4"
    with pytest.raises(RenderError, match="corrupt.mp4"):
        render_timeline(write_timeline(edl, tmp_path / "e.otio"), out)
    _assert_nothing_left(out)


def test_source_too_short_fails_after_encoding_started(media: dict[str, Path],
                                                       tmp_path: Path) -> None:
    edl = EditDecisionList(RATE, W, H, (_d("ok", "card", "", 0, 5),
                                        _d("short", "video", media["cuts"], 60, 30)))
    out = tmp_path / "film.mp4"
    with pytest.raises(RenderError, match=r"shot short.*cuts\.mp4.*expected 30"):
        render_timeline(write_timeline(edl, tmp_path / "e.otio"), out)
    _assert_nothing_left(out)


def test_output_folder_that_is_a_file_fails_before_encoding(media: dict[str, Path],
                                                            tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    edl = EditDecisionList(RATE, W, H, (_d("a", "video", media["cuts"], 0, 3),))
    work = tmp_path / "work"
    with pytest.raises(RenderError, match="blocker"):
        render_timeline(write_timeline(edl, tmp_path / "e.otio"), tmp_path / "blocker" / "f.mp4",
                        workdir=work)
    assert not work.exists(), "nothing was encoded"


def test_unwritable_output_folder(media: dict[str, Path], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            probe = locked / ".probe"
            try:
                probe.touch()
                probe.unlink()
                pytest.skip("running as root: a 0o500 folder is still writable")
            except OSError:
                pass
        edl = EditDecisionList(RATE, W, H, (_d("a", "video", media["cuts"], 0, 3),))
        with pytest.raises(RenderError, match="locked"):
            render_timeline(write_timeline(edl, tmp_path / "e.otio"), locked / "film.mp4")
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_run_ffmpeg_reports_what_failed(tmp_path: Path) -> None:
    assert Path(ffmpeg_exe()).is_file()
    with pytest.raises(RenderError, match=r"making nothing: .*nothing_here\.mp4"):
        run_ffmpeg(["-i", str(tmp_path / "nothing_here.mp4"), "-f", "null", "-"],
                   what="making nothing")


def test_monatge_ffmpeg_env_must_point_at_a_binary(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MONTAGE_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(RenderError, match="no-such-ffmpeg"):
        ffmpeg_exe()


def test_cache_reencodes_only_changed_clips(media: dict[str, Path], tmp_path: Path) -> None:
    from montage.film import render_edit

    cache = tmp_path / "cache"
    first = EditDecisionList(RATE, W, H, (_d("a", "video", media["cuts"], 0, 3),
                                          _d("b", "card", "", 0, 3),
                                          _d("c", "video", media["cuts"], 6, 3)))
    r1 = render_edit(write_timeline(first, tmp_path / "1.otio"), tmp_path / "f1.mp4", cache=cache)
    assert (r1.encoded, r1.reused) == (3, 0)
    # move c to the front and change b's text: only b is encoded again
    b2 = dataclasses.replace(_d("b", "card", "", 0, 3), text="another sentence")
    second = EditDecisionList(RATE, W, H, (first.decisions[2], first.decisions[0], b2))
    r2 = render_edit(write_timeline(second, tmp_path / "2.otio"), tmp_path / "f2.mp4", cache=cache)
    assert (r2.encoded, r2.reused) == (1, 2)
    assert count_video_frames(tmp_path / "f2.mp4") == second.frames
    assert not list(cache.glob("*.tmp.*"))


def test_unchanged_cut_copies_the_last_film(media: dict[str, Path], tmp_path: Path) -> None:
    """An unchanged recut copies the published film instead of joining the clips again; a
    changed clip, a film touched since, or a changed source each make it join anew."""
    from montage.film import render_edit

    cache = tmp_path / "cache"
    edl = EditDecisionList(RATE, W, H, (_d("a", "video", media["cuts"], 0, 3),
                                        _d("b", "card", "", 0, 3)))
    otio = write_timeline(edl, tmp_path / "1.otio")
    said: list[str] = []
    film = render_edit(otio, tmp_path / "film.mp4", cache=cache, progress=said.append).path
    assert not any("copied" in s for s in said)
    staged = tmp_path / ".film.cut2.mp4"
    said.clear()
    r = render_edit(otio, staged, cache=cache, progress=said.append, reuse=film)
    assert (r.encoded, r.reused) == (0, 2) and any("copied" in s for s in said)
    assert not any("joining" in s for s in said)
    assert staged.read_bytes() == film.read_bytes()
    os.replace(staged, film)  # as the project publishes it: the record still matches
    said.clear()
    render_edit(otio, staged, cache=cache, progress=said.append, reuse=film)
    assert any("copied" in s for s in said)
    os.replace(staged, film)
    # another edit (one more frame on the card) must not reuse it
    longer = EditDecisionList(RATE, W, H, (edl.decisions[0],
                                           dataclasses.replace(edl.decisions[1], frames=4)))
    said.clear()
    render_edit(write_timeline(longer, tmp_path / "2.otio"), staged, cache=cache,
                progress=said.append, reuse=film)
    assert any("joining" in s for s in said) and count_video_frames(staged) == 7
    os.replace(staged, film)
    # the film changed by hand since the last render (size and time differ): joined again
    with open(film, "ab") as fh:
        fh.write(b"\0")
    said.clear()
    render_edit(write_timeline(longer, tmp_path / "3.otio"), staged, cache=cache,
                progress=said.append, reuse=film)
    assert any("joining" in s for s in said) and count_video_frames(staged) == 7


def test_probes_are_kept_per_file_version(media: dict[str, Path], tmp_path: Path) -> None:
    from montage.film.filmcache import probe_known, read_probes, write_probes

    known: dict = {}
    info = probe_known(media["wide43"], known)
    assert (info.width, info.height, info.has_audio) == (64, 48, True)
    write_probes(tmp_path, known)
    again = read_probes(tmp_path)
    assert probe_known(media["wide43"], again) == info and again == known
    # a lie planted in the record is what is read back for that version (no ffmpeg run)...
    entry = next(iter(again))
    again[entry] = {"width": 1, "height": 2, "has_audio": False, "look": {}}
    assert (probe_known(media["wide43"], again).width) == 1
    # ...but a record from before looks were kept is probed again (it lacks the look)
    again[entry] = {"width": 1, "height": 2, "has_audio": False}
    assert (probe_known(media["wide43"], again).width) == 64
    again[entry] = {"width": 1, "height": 2, "has_audio": False, "look": {}}
    # ...and a new version of the file (another mtime) is probed for real
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(media["wide43"].read_bytes())
    assert probe_known(copy, again).width == 64
    (tmp_path / "probes.json").write_text("{not json", encoding="utf-8")
    assert read_probes(tmp_path) == {}


def test_a_preview_is_the_same_film_with_its_segments_sound_then_finished(media, tmp_path):
    """A preview join copies the segments' FLAC sound (nothing is encoded); its pictures and
    samples are the finished film's; finish_film puts the AAC film in its place."""
    from montage.film import finish_film, render_edit

    cache = tmp_path / "cache"
    edl = EditDecisionList(RATE, W, H, (_d("a", "video", media["wide43"], 6, 18),
                                        _d("b", "card", "", 0, 7),
                                        _d("c", "still", media["still"], 0, 13),
                                        _d("d", "video", media["cuts"], 47, 2)))
    otio = write_timeline(edl, tmp_path / "edit.otio")
    film = tmp_path / "film.mp4"
    said: list[str] = []
    r = render_edit(otio, film, cache=cache, preview=True, progress=said.append)
    assert r.preview and r.encoded == 4
    with av.open(str(film)) as c:
        assert c.streams.audio[0].codec_context.name == "flac"
        samples = sum(f.samples for f in c.decode(audio=0))
    with av.open(str(film)) as c:
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert samples == round(edl.seconds * 48000) and len(pictures) == edl.frames
    said.clear()
    done = finish_film(otio, film, cache, progress=said.append)
    assert done.encoded == 0 and not done.preview and any("joining" in s for s in said)
    with av.open(str(film)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        finished = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(finished) == len(pictures) and all((a == b).all() for a, b in zip(finished, pictures))
    assert not list(tmp_path.glob(".film*"))
    again = render_edit(otio, tmp_path / "again.mp4", cache=cache, reuse=film)
    assert again.encoded == 0 and again.path.read_bytes() == film.read_bytes()  # the finished one
