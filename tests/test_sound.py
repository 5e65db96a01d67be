"""Narration, music and the mix, with a real Piper voice, librosa and ffmpeg; nothing is
listened to, everything is measured: beats against a click track of known tempo, the mixed
film's length and loudness (ffmpeg's ebur128), and speech energy where each shot speaks."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from montage.cli import main
from montage.film import export_project, read_srt, read_timeline, render_timeline, write_srt
from montage.film.audio import TARGET_I, TARGET_TP, measure_loudness, mix_film, voice_energy
from montage.film.soundtrack import LEAD, place, probe_audio
from montage.film.timeline import read_soundtrack, write_timeline
from montage.sound.music import track_beats
from montage.sound.narrate import check_voice, find_voice, narrate
from montage.optimize import EditDecision, EditDecisionList
from planner.errors import AudioError
from planner.shots import PlannedShot, ShotPlan
from retrieval.media.ffmpeg import count_video_frames
from tests.conftest import FFMPEG

RATE = Fraction(25)
W, H = 128, 72
TONE = 6000  # Hz: the footage's own sound, above the speech band the checks listen to
SPEECH_BAND = (300, 3400)
TONE_BAND = (5600, 6400)


def make_music(path: Path, bpm: float, seconds: float, *, bass_only: bool = False) -> Path:
    """A click track at ``bpm``, four beats to the bar, the first of each bar accented (louder
    and low); with ``bass_only`` every click is low (nothing in the speech band)."""
    beat = 60 / bpm
    bar = 4 * beat
    high = 70 if bass_only else 1760
    expr = (f"if(lt(mod(t,{bar}),{beat / 2}),0.9*sin(2*PI*55*t),0.5*sin(2*PI*{high}*t))"
            f"*exp(-30*mod(t,{beat}))")
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc='{expr}':s=44100:d={seconds}", str(path)], check=True)
    return path


def _footage(path: Path, seconds: float) -> Path:
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency={TONE}:duration={seconds}", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
                   check=True)
    return path


@pytest.mark.parametrize("bpm", [120.0, 96.0])
def test_beats_and_downbeats_of_a_click_track(tmp_path: Path, bpm: float) -> None:
    music = make_music(tmp_path / "click.wav", bpm, 20)
    grid = track_beats(music)
    assert abs(grid.tempo - bpm) / bpm < 0.01, grid.tempo
    beat = 60 / bpm
    truth = [k * beat for k in range(int(20 / beat))]
    assert all(min(abs(b - t) for b in grid.beats) < 0.05 for t in truth), grid.beats
    assert len(grid.beats) <= len(truth) + 1
    bars = truth[::4]
    assert len(grid.downbeats) >= len(bars) - 1
    assert all(min(abs(d - t) for t in bars) < 0.05 for d in grid.downbeats), grid.downbeats
    assert grid.over(45)[0][-1] <= 45 and len(grid.over(45)[0]) > 2 * len(grid.beats)


def test_bad_music_is_one_clear_error_each(tmp_path: Path) -> None:
    text = tmp_path / "song.mp3"
    text.write_text("not music at all\n" * 50)
    picture = tmp_path / "cover.png"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=1",
                    "-frames:v", "1", str(picture)], check=True)
    blip = make_music(tmp_path / "blip.wav", 120, 0.5)
    for path, needle in ((tmp_path / "nowhere.mp3", "music file not found"),
                         (text, "not an audio file"), (picture, "not an audio file"),
                         (blip, "under 1 s")):
        with pytest.raises(AudioError, match=needle):
            track_beats(path)


def test_bad_voice_models_are_refused(tmp_path: Path) -> None:
    real = find_voice()
    with pytest.raises(AudioError, match="voice model not found"):
        check_voice(tmp_path / "nowhere.onnx")
    lonely = tmp_path / "lonely.onnx"
    shutil.copyfile(real.model, lonely)
    with pytest.raises(AudioError, match=r"not a Piper voice \(no lonely.onnx.json"):
        check_voice(lonely)
    other = tmp_path / "other.onnx"
    shutil.copyfile(real.model, other)
    (tmp_path / "other.onnx.json").write_text(json.dumps({"labels": ["cat", "dog"]}))
    with pytest.raises(AudioError, match="not a Piper voice.*phoneme_id_map"):
        check_voice(other)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"PK\x03\x04 a zip, not a model")
    shutil.copyfile(real.config, tmp_path / "fake.onnx.json")
    with pytest.raises(AudioError, match="not an ONNX model"):
        check_voice(fake)


def _cli(args: list[str], *, hide_piper: bool = False) -> subprocess.CompletedProcess:
    """montage in a fresh process; ``hide_piper`` makes Piper unimportable there."""
    code = ("import sys\n" + ("sys.modules['piper'] = None\n" if hide_piper else "")
            + "from montage.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)


def test_narrate_without_piper_says_what_to_install(tmp_path: Path) -> None:
    script = tmp_path / "story.txt"
    script.write_text("A man rides a bicycle.\n")
    (tmp_path / "lib").mkdir()
    done = _cli(["make", str(script), "--library", str(tmp_path / "lib"), "--out",
                 str(tmp_path / "film.mp4"), "--narrate", "--quiet"], hide_piper=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr
    assert "Piper" in done.stderr and "pip install 'montage[narration]'" in done.stderr


@pytest.mark.parametrize("flag", ["--music", "--voice"])
def test_bad_sound_files_on_the_command_line(tmp_path: Path, capsys, flag: str) -> None:
    script = tmp_path / "story.txt"
    script.write_text("A man rides a bicycle.\n")
    (tmp_path / "lib").mkdir()
    bad = tmp_path / ("song.mp3" if flag == "--music" else "voice.onnx")
    bad.write_text("nothing here")
    code = main(["make", str(script), "--library", str(tmp_path / "lib"), "--out",
                 str(tmp_path / "film.mp4"), flag, str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1, err
    assert ("not an audio file" if flag == "--music" else "not a Piper voice") in err
    assert not (tmp_path / "film.mp4").exists()


@pytest.fixture(scope="module")
def narrated(tmp_path_factory: pytest.TempPathFactory):
    """A narrated film rendered from a hand-made edit: a spoken shot on footage with its own
    sound, an unspoken one on the same footage, a spoken title card; music looped under."""
    root = tmp_path_factory.mktemp("narrated")
    footage = _footage(root / "street.mp4", 10)
    music = make_music(root / "music.wav", 120, 4, bass_only=True)
    texts = ("A man rides his bicycle through the busy street.", "...",
             "The cat sleeps in the sun.")
    plan = ShotPlan("x", tuple(PlannedShot(f"sh-{i}", 0, t, "", (), 2.0, i + 1)
                               for i, t in enumerate(texts)))
    speech = narrate(plan, find_voice(), root / "cache", RATE)
    assert set(speech) == {"sh-0", "sh-2"}, "a sentence with no words is not spoken"
    spoken = {sid: round((s.floor() + 0.35) * 25) for sid, s in speech.items()}
    edl = EditDecisionList(RATE, W, H, (
        EditDecision("sh-0", texts[0], "library", "video", str(footage), 0, spoken["sh-0"], 0.5),
        EditDecision("sh-1", texts[1], "library", "video", str(footage), 150, 75, 0.5),
        EditDecision("sh-2", texts[2], "placeholder", "card", "", 0, spoken["sh-2"], 0.3),
    ))
    sound = place(edl, speech, music, probe_audio(music).seconds)
    write_timeline(edl, root / "edit.otio", name="narrated", sound=sound)
    film = render_timeline(root / "edit.otio", root / "film.mp4")
    write_srt(edl, root / "film.srt", sound=sound)
    return root, edl, sound, film


def _span(v, rate: Fraction) -> tuple[float, float]:
    a = float(Fraction(v.start) / rate)
    return a, a + v.speech


def test_the_narrated_film_is_as_long_as_its_picture(narrated) -> None:
    root, edl, sound, film = narrated
    assert count_video_frames(film) == edl.frames
    out = subprocess.run([FFMPEG, "-v", "error", "-i", str(film), "-map", "0:a:0", "-ac", "1",
                          "-f", "s16le", "-ar", "48000", "-"], capture_output=True, check=True).stdout
    assert abs(len(out) / 2 / 48000 - edl.seconds) < 1 / 25 + 0.03
    plays = [(c.start, c.source_in, c.frames) for c in sound.music_clips]
    assert plays == [(0, 0, 100), (100, 0, 100), (200, 0, edl.frames - 200)], \
        "4 s of music looped, then trimmed, under the whole film"


def test_the_mix_is_normalised_in_linear_mode(narrated, tmp_path: Path) -> None:
    root, edl, sound, film = narrated
    integrated, peak = measure_loudness(film)
    assert abs(integrated - TARGET_I) <= 0.5, integrated
    assert peak <= TARGET_TP, peak
    copy = shutil.copyfile(film, tmp_path / "again.mp4")
    report = mix_film(Path(copy), sound, edl.frames, tmp_path)
    assert report.kind == "linear"


def test_speech_sits_where_each_shot_speaks(narrated) -> None:
    root, edl, sound, film = narrated
    starts = edl.starts()
    assert [v.start for v in sound.lines] == [starts[0] + round(LEAD * 25), starts[2] + round(LEAD * 25)]
    for v, (start, d) in zip(sound.lines, ((starts[0], edl.decisions[0]), (starts[2], edl.decisions[2]))):
        a, b = _span(v, edl.rate)
        assert b <= float(Fraction(start + d.frames) / edl.rate), "the voice ends before its cut"
    quiet = (float(Fraction(starts[1]) / edl.rate) + 0.6, float(Fraction(starts[2]) / edl.rate) - 0.3)
    spans = [_span(v, edl.rate) for v in sound.lines]
    voice = voice_energy(film, spans + [quiet], band=SPEECH_BAND)
    assert all(level > -35 for level in voice[:-1]), voice
    assert all(level - voice[-1] > 20 for level in voice[:-1]), voice
    # the footage's own sound is ducked under the voice, at full level where nobody speaks
    tone = voice_energy(film, [spans[0], quiet], band=TONE_BAND)
    assert 10 < tone[1] - tone[0] < 20, tone


def test_subtitles_follow_the_speech(narrated) -> None:
    root, edl, sound, film = narrated
    cues = read_srt(root / "film.srt")
    assert [c[2] for c in cues] == [d.text for d in edl.decisions]
    for cue, v in zip((cues[0], cues[2]), sound.lines):
        a, b = _span(v, edl.rate)
        assert abs(cue[0] - a) < 0.002 and abs(cue[1] - b) < 0.002
    starts = edl.starts()
    assert cues[1][:2] == pytest.approx((starts[1] / 25, starts[2] / 25), abs=1e-9), \
        "an unspoken shot keeps its clip's times"


def test_the_soundtrack_lives_in_the_edit(narrated, tmp_path: Path) -> None:
    root, edl, sound, film = narrated
    assert read_soundtrack(root / "edit.otio") == sound
    assert read_timeline(root / "edit.otio") == edl
    result = export_project(root, tmp_path / "cut.otio")
    back = otio.adapters.read_from_file(str(result.path))
    tracks = {t.name: t for t in back.tracks if t.kind == "Audio"}
    assert {"narration", "music"} <= set(tracks)
    names = [c.name for c in tracks["narration"].find_clips()]
    assert names == ["sh-0", "sh-2"]
    first = tracks["narration"].find_clips()[0]
    assert tracks["narration"].range_of_child(first).start_time.value == sound.lines[0].start
    assert len(tracks["music"].find_clips()) == len(sound.music_clips)
