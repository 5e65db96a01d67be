"""``montage export``: each format read back by a real reader (melt, xmllint, the OTIO
adapters), every clip with media, and one clear error for each kind of bad input."""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import opentimelineio as otio
import pytest

from montage.cli import main
from montage.film import FORMATS, export_project, read_timeline, render_timeline, write_timeline
from montage.film.export import AudioClip, AudioTrack, ExportClip, media_folder, prepare_media
from montage.film.export.fcpxml import fcpxml_text, seconds
from montage.film.export.mlt import mlt_text
from montage.optimize import EditDecision, EditDecisionList
from planner.errors import ExportError
from retrieval.media.decode import read_frames
from tests.conftest import make_clip, make_still

W, H = 128, 72


def _edl(lib: Path, rate: Fraction) -> EditDecisionList:
    """Library video (with and without sound), a card, a still, a generated clip."""
    return EditDecisionList(rate, W, H, (
        EditDecision("sh-1", "A test pattern", "library", "video", str(lib / "a.mp4"), 10, 20, 0.5),
        EditDecision("sh-2", "Nothing matched this", "placeholder", "card", "", 0, 15, 0.1),
        EditDecision("sh-3", "Colour bars", "library", "still", str(lib / "c.png"), 0, 12, 0.4),
        EditDecision("sh-4", "A made-up shot", "generated", "video", str(lib / "gen" / "g.mp4"),
                     0, 18, 0.4),
        EditDecision("sh-5", "More bars", "library", "video", str(lib / "b.mp4"), 5, 25, 0.4),
    ))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = tmp_path_factory.mktemp("library")
    make_clip(lib / "a.mp4", duration=3, rate=25, size=f"{W}x{H}", audio=True)
    make_clip(lib / "b.mp4", duration=3, rate=25, size=f"{W}x{H}", source="smptebars")
    make_still(lib / "c.png", size=f"{W}x{H}", source="smptebars")
    make_clip(lib / "gen" / "g.mp4", duration=2, rate=25, size=f"{W}x{H}", source="testsrc")
    return lib


def _project(root: Path, lib: Path, rate: Fraction) -> Path:
    project = root / "film.montage"
    write_timeline(_edl(lib, rate), project / "edit.otio", name="film")
    return project


@pytest.fixture(scope="module")
def project(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("p25"), library, Fraction(25))


@pytest.fixture(scope="module")
def ntsc(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("p2997"), library, Fraction(30000, 1001))


@pytest.fixture(scope="module")
def film(project: Path) -> Path:
    return render_timeline(project / "edit.otio", project / "film.mp4")


def _frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed: install {program} (Debian: "
                    f"{'melt' if program == 'melt' else 'libxml2-utils'}) to run this check")


@pytest.mark.parametrize("ext", [".mlt", ".kdenlive"])
def test_melt_renders_the_export_like_the_film(project: Path, film: Path, tmp_path: Path,
                                               ext: str) -> None:
    _need("melt")
    out = export_project(project, tmp_path / f"cut{ext}").path
    rendered = tmp_path / "melt.mp4"
    subprocess.run(["melt", "-quiet", str(out), "-consumer", f"avformat:{rendered}"],
                   check=True, capture_output=True, timeout=120)
    assert _frames(rendered) == _frames(film) == 90
    edl = read_timeline(project / "edit.otio")
    # a frame in the middle of every clip (card, still and generated included) looks alike
    times = [(s + d.frames // 2 + 0.5) / 25 for s, d in zip(edl.starts(), edl.decisions)]
    ours, theirs = read_frames(film, times), read_frames(rendered, times)
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(ours, theirs)]
    assert max(diffs) < 15, diffs
    shifted = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(ours, theirs[1:])]
    assert min(shifted) > 2 * max(diffs), "the comparison tells different clips apart"


def _clips(timeline, rate: float) -> list[tuple[str, int, int, str]]:
    video = [t for t in timeline.tracks if t.kind == "Video"]
    assert len(video) == 1
    return [(c.name, c.source_range.start_time.to_frames(rate),
             c.source_range.duration.to_frames(rate), unquote(urlparse(
                 c.media_reference.target_url).path)) for c in video[0].find_clips()]


@pytest.mark.parametrize("which", ["project", "ntsc"])
@pytest.mark.parametrize("ext,adapter", [(".edl", "cmx_3600"), (".xml", "fcp_xml")])
def test_edl_and_fcp7_read_back_with_the_same_clips_and_times(
        request: pytest.FixtureRequest, tmp_path: Path, which: str, ext: str, adapter: str) -> None:
    project = request.getfixturevalue(which)
    edl = read_timeline(project / "edit.otio")
    rate = float(edl.rate)
    out = export_project(project, tmp_path / f"cut{ext}").path
    kwargs = {"rate": rate} if adapter == "cmx_3600" else {}
    back = otio.adapters.read_from_file(str(out), adapter_name=adapter, **kwargs)
    got = _clips(back, rate)
    assert [(n, i, f) for n, i, f, _ in got] == [(d.shot_id, d.source_in, d.frames)
                                                 for d in edl.decisions]
    for (_, _, _, media), d in zip(got, edl.decisions):
        assert Path(media).is_file(), "every clip names media that exists"
        if d.kind == "video" and d.source == "library":
            assert media == d.media, "library footage is named where it lies, not copied"
        else:
            assert Path(media).parent == media_folder(out)
    if ext == ".edl":
        assert ("FCM: DROP FRAME" if which == "ntsc" else "FCM: NON-DROP FRAME") in out.read_text()
    else:  # the clips' own sound is an audio track: only sh-1 has sound
        audio = [t for t in back.tracks if t.kind == "Audio"]
        assert [c.name for t in audio for c in t.find_clips()] == ["sh-1"]


def _fcpxml(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    return root, {e.get("id"): e for e in root.find("resources")}


def _secs(text: str) -> Fraction:
    assert text.endswith("s")
    return Fraction(text[:-1])


@pytest.mark.parametrize("which", ["project", "ntsc"])
def test_fcpxml_is_well_formed_exact_and_complete(request: pytest.FixtureRequest,
                                                  tmp_path: Path, which: str) -> None:
    project = request.getfixturevalue(which)
    edl = read_timeline(project / "edit.otio")
    out = export_project(project, tmp_path / "cut.fcpxml").path
    _need("xmllint")
    subprocess.run(["xmllint", "--noout", str(out)], check=True, capture_output=True)
    root, res = _fcpxml(out)
    assert root.get("version") == "1.9"
    sequence = root.find("library/event/project/sequence")
    frame = "1001/30000s" if which == "ntsc" else "1/25s"
    assert res[sequence.get("format")].get("frameDuration") == frame
    spine = list(sequence.find("spine"))
    assert [c.get("name") for c in spine] == [d.shot_id for d in edl.decisions]
    total = sum(_secs(c.get("duration")) for c in spine)
    assert total == _secs(sequence.get("duration")) == Fraction(edl.frames) / edl.rate
    at = Fraction(0)
    for clip, d in zip(spine, edl.decisions):
        assert _secs(clip.get("offset")) == at, "clips follow each other without a gap"
        assert _secs(clip.get("start")) == Fraction(d.source_in) / edl.rate
        at += _secs(clip.get("duration"))
        asset = res[clip.get("ref")]
        src = asset.find("media-rep").get("src")
        assert Path(unquote(urlparse(src).path)).is_file(), f"{src} exists"
        assert _secs(asset.get("duration")) >= _secs(clip.get("start")) + _secs(clip.get("duration"))
    if which == "ntsc":  # 25 fps footage in a 29.97 film plays at its own speed
        assert spine[0].find("conform-rate").get("srcFrameRate") == "25"
        assert seconds(1, Fraction(30000, 1001)) == "1001/30000s"


def test_otio_and_otioz_give_every_clip_media(project: Path, tmp_path: Path) -> None:
    edl = read_timeline(project / "edit.otio")
    out = export_project(project, tmp_path / "cut.otio").path
    back = read_timeline(out)
    assert [(d.shot_id, d.source_in, d.frames, d.kind) for d in back.decisions] == \
        [(d.shot_id, d.source_in, d.frames, d.kind) for d in edl.decisions]
    assert all(Path(d.media).is_file() for d in back.decisions), "cards have media now"
    bundle = export_project(project, tmp_path / "cut.otioz").path
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
    timeline = otio.adapters.read_from_file(str(bundle), adapter_name="otioz")
    for clip in timeline.tracks[0].find_clips():
        assert unquote(clip.media_reference.target_url) in names


def test_cards_are_rendered_once_and_reused(project: Path, tmp_path: Path) -> None:
    first = export_project(project, tmp_path / "cut.mlt")
    assert (first.media.rendered, first.media.reused, first.media.copied) == (2, 0, 1)
    second = export_project(project, tmp_path / "cut.fcpxml")  # same stem -> same media folder
    assert second.path.with_suffix(".mlt") == first.path
    assert (second.media.rendered, second.media.reused, second.media.copied) == (0, 2, 0)
    source = Path(read_timeline(project / "edit.otio").decisions[3].media)
    assert source.is_file(), "the generated clip was copied, not moved"


def test_extra_audio_tracks_are_laid_under_the_picture(library: Path, project: Path,
                                                       tmp_path: Path) -> None:
    """Narration and music do not exist yet; the writers already take their tracks."""
    edl = read_timeline(project / "edit.otio")
    edit, _ = prepare_media(edl, project / "edit.otio", tmp_path / "x.mlt")
    tone = make_clip(tmp_path / "tone.mp4", duration=2, rate=25, size=f"{W}x{H}", audio=True)
    voice = ExportClip("voice", "", tone, 0, 30, 50, 0, 0, True, "audio", "narration",
                       Fraction(25), has_video=False)
    edit = replace(edit, audio=(AudioTrack("narration", (AudioClip(40, voice),)),))
    mlt = ET.fromstring(mlt_text(edit))
    assert [t.get("hide") for t in mlt.find("tractor").findall("track")] == [None, "video"]
    assert mlt.find("tractor/transition/property[@name='mlt_service']").text == "mix"
    assert mlt.find("playlist[@id='playlist1']/blank").get("length") == "40"
    fcp = ET.fromstring(fcpxml_text(edit).split("\n", 2)[2])
    parent = fcp.find(".//spine/asset-clip[asset-clip]")
    connected = parent.find("asset-clip[@lane='-1']")
    # film frame 40 is 5 frames into sh-3 (the still's clip, which starts at film frame 35)
    assert parent.get("name") == "sh-3" and connected.get("offset") == seconds(5, Fraction(25))


def test_unknown_extension_lists_the_known_ones(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError) as err:
        export_project(project, tmp_path / "cut.avi")
    assert "'.avi'" in err.value.message
    assert all(ext in err.value.hint for ext in FORMATS)
    assert not list(tmp_path.iterdir()), "nothing written"


def test_a_project_with_no_cut(tmp_path: Path) -> None:
    (tmp_path / "empty.montage").mkdir()
    with pytest.raises(ExportError, match="no cut yet"):
        export_project(tmp_path / "empty.montage", tmp_path / "cut.edl")
    with pytest.raises(ExportError, match="project folder not found"):
        export_project(tmp_path / "nowhere", tmp_path / "cut.edl")


def test_an_export_folder_that_is_not_writable(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ExportError, match="cannot write the export"):
        export_project(project, blocker / "cut.fcpxml")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:
            with pytest.raises(ExportError, match="cannot write the export"):
                export_project(project, locked / "cut.fcpxml")
            assert not list(locked.iterdir()), "no media rendered before the check"
    finally:
        locked.chmod(0o700)


def test_the_export_never_overwrites_the_edit_or_a_source(project: Path) -> None:
    before = (project / "edit.otio").read_bytes()
    with pytest.raises(ExportError, match="sources are never overwritten"):
        export_project(project, project / "edit.otio")
    assert (project / "edit.otio").read_bytes() == before


def test_missing_media_is_one_error_and_no_export(library: Path, tmp_path: Path) -> None:
    edl = _edl(library, Fraction(25))
    gone = EditDecision("sh-9", "gone", "library", "video", str(tmp_path / "gone.mp4"), 0, 5, 0.5)
    project = tmp_path / "p"
    write_timeline(EditDecisionList(edl.rate, W, H, edl.decisions + (gone,)), project / "edit.otio")
    with pytest.raises(ExportError, match="gone.mp4"):
        export_project(project, tmp_path / "out" / "cut.mlt")
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix == ".mlt" or
                p.name.startswith(".")], "no export and no partial file left"


def test_cli_export(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(project), "--to", str(tmp_path / "cut.edl")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "cut.edl").is_file()
    assert main(["export", str(project), "--to", str(tmp_path / "cut.mov")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ".fcpxml" in err and "Traceback" not in err
