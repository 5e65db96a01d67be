"""`montage models`: the catalogue, and pull / remove / check against a Hugging Face Hub on
loopback (tests/hubserver.py) serving tiny real-architecture models (tests/models_kit.py)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from montage.cli import main
from retrieval.models import catalogue, entry, hub_cache, manual_folder, models_home, status
from tests.models_kit import BIG_BYTES

ROOT = Path(__file__).resolve().parents[1]


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() or p.is_symlink()) if folder.exists() else []


def test_the_catalogue_lists_five_models_of_four_kinds_with_pins_and_licences(capsys) -> None:
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) >= 5
    assert {m["kind"] for m in listed} >= {"embedder", "image", "video", "identity"}
    for m in listed:
        assert m["licence"] and m["purpose"] and m["repo"].count("/") == 1
        assert m["revision"] is None or re.fullmatch(r"[0-9a-f]{40}", m["revision"])
        assert not m["installed"]
        for f in m["files"]:
            assert f["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
    by = {m["name"]: m for m in listed}
    assert by["clip-vit-b32"]["dim"] == 512 and by["clip-vit-b32"]["needs"] == "cpu"
    assert not by["sd-turbo"]["commercial"]  # pull asks, auto never takes it
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    assert "clip-vit-b32" in table and "[asks]" in table and "installed" in table


def test_an_unknown_model_is_answered_with_the_catalogue(capsys) -> None:
    assert main(["models", "pull", "clip-vit-b99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'clip-vit-b99'")
    assert all(name in err for name in ("clip-vit-b32", "lcm-dreamshaper-v7", "wan2.1-t2v-1.3b"))


def test_the_user_file_adds_and_replaces_entries_and_a_bad_one_is_named(tmp_path,
                                                                       monkeypatch) -> None:
    user = tmp_path / "models.toml"
    monkeypatch.setenv("MONTAGE_MODELS_FILE", str(user))
    user.write_text('[[model]]\nname = "clip-vit-b32"\nkind = "embedder"\nloader = "open_clip"\n'
                    'repo = "me/my-clip"\nrevision = ""\nlicence = "MIT"\npurpose = "mine"\n'
                    'dim = 8\n[[model.files]]\npath = "*"\n')
    assert entry("clip-vit-b32").repo == "me/my-clip" and "lcm-dreamshaper-v7" in catalogue()
    user.write_text('[[model]]\nname = "x"\nkind = "painting"\n')
    from planner.errors import ModelError

    with pytest.raises(ModelError) as err:
        catalogue()
    assert str(user) in err.value.message and "painting" in err.value.message


def test_pull_shows_progress_checks_every_file_and_auto_then_takes_it(hub, capsys) -> None:
    from retrieval.embed import auto_embedder, make_embedder

    before = auto_embedder()
    assert before.spec == "proxy" and "montage models pull tiny-clip" in before.line
    assert main(["models", "pull", "tiny-clip"]) == 0
    out, err = capsys.readouterr()
    assert "pull tiny-clip" in err and "100%" in err  # one progress bar for the whole pull
    assert "pulled tiny-clip" in out and "hash checked" in out
    found = status(entry("tiny-clip")).installed
    assert found is not None and found.how == "pulled"
    assert found.folder == hub_cache() / "models--test--tiny-clip" / "snapshots" / found.revision
    record = json.loads((models_home() / "pulled" / "tiny-clip.json").read_text())
    by_path = {f["path"]: f for f in record["files"]}
    assert len(by_path["open_clip_model.safetensors"]["sha256"]) == 64  # LFS: its sha256
    assert len(by_path["open_clip_config.json"]["blob_id"]) == 40  # other files: the git id
    gets = len(hub.downloads("open_clip_model.safetensors"))
    chosen = auto_embedder()
    assert chosen.spec == "tiny-clip" and f"tiny-clip@{found.revision[:12]}" in chosen.line
    emb = make_embedder("tiny-clip")
    assert emb.name == f"tiny-clip@{found.revision[:12]}" and emb.dim == 32
    assert main(["models", "pull", "tiny-clip"]) == 0  # installed: nothing fetched again
    assert "already installed" in capsys.readouterr().out
    assert len(hub.downloads("open_clip_model.safetensors")) == gets


def test_a_corrupt_download_is_fetched_once_more_then_refused_leaving_nothing(hub, capsys,
                                                                             caplog) -> None:
    weights = "open_clip_model.safetensors"
    hub.corrupt[weights] = 2
    assert main(["models", "pull", "tiny-clip", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{weights} of tiny-clip arrived corrupt twice" in err
    assert f"{hub.url}/test/tiny-clip/resolve/" in err  # the URL
    assert str(manual_folder("tiny-clip")) in err  # where to place it by hand
    assert len(hub.downloads(weights)) == 2
    storage = hub_cache() / "models--test--tiny-clip"
    left = _files_under(storage / "blobs")
    assert not any(p.endswith(".incomplete") for p in left)
    assert len(left) == 1  # the config (whole, verified); the corrupt weights are gone
    assert not (storage / "snapshots" / entry("tiny-clip").revision / weights).exists()
    assert status(entry("tiny-clip")).installed is None
    hub.corrupt[weights] = 1  # corrupt once: the second download is the good one
    assert main(["models", "pull", "tiny-clip", "--quiet"]) == 0
    assert len(hub.downloads(weights)) == 4
    assert any("does not match" in r.getMessage() for r in caplog.records)
    assert status(entry("tiny-clip")).installed is not None


def test_a_model_bigger_than_the_free_disk_is_refused_before_any_download(hub, capsys) -> None:
    hub.claim["big.bin"] = 1 << 60  # an exabyte, as the hub's model info says
    assert main(["models", "pull", "big-test"]) == 2
    err = capsys.readouterr().err
    assert "not enough disk space to pull big-test" in err and "free" in err
    assert hub.downloads("big.bin") == [] and hub.downloads("open_clip_config.json") == []


def test_offline_nothing_is_asked_of_the_network(hub, monkeypatch, capsys) -> None:
    from retrieval.embed import auto_embedder

    assert main(["models", "pull", "tiny-clip", "--quiet"]) == 0
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "pull", "tiny-sd"]) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and str(manual_folder("tiny-sd")) in err
    assert auto_embedder().spec == "tiny-clip"  # what is installed, read from the disk
    assert main(["models", "list"]) == 0 and "HF_HUB_OFFLINE is set" in capsys.readouterr().out
    assert hub.log == []


def test_a_pull_killed_half_way_resumes_where_it_stopped(hub, tmp_path) -> None:
    """kill -9 a `montage models pull` whose download stalls after 12 MiB: the next pull asks
    only for the rest (a Range request), and the file is whole and checked."""
    hub.stall["big.bin"] = 12 << 20
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from montage.cli import main; "
                             "sys.exit(main(sys.argv[1:]))", "models", "pull", "big-test",
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    blobs = hub_cache() / "models--test--big" / "blobs"
    deadline = time.monotonic() + 120
    partial = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in blobs.glob("*.incomplete") if p.stat().st_size >= 10 << 20]
            if partial:
                break
            time.sleep(0.1)
        assert partial, f"no partial download appeared: {proc.stderr.read1().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        hub.release()
    have = partial[0].stat().st_size
    assert 0 < have < BIG_BYTES
    assert status(entry("big-test")).installed is None  # nothing half-installed
    assert main(["models", "pull", "big-test", "--quiet"]) == 0
    assert hub.downloads("big.bin") == ["", f"bytes={have}-"]  # resumed, not restarted
    found = status(entry("big-test")).installed
    assert found is not None and (found.folder / "big.bin").stat().st_size == BIG_BYTES
    assert not list(blobs.glob("*.incomplete"))


def test_remove_frees_the_space_and_a_second_remove_says_it_is_gone(hub, capsys) -> None:
    assert main(["models", "pull", "tiny-sd", "--quiet"]) == 0
    storage = hub_cache() / "models--test--tiny-sd"
    held = sum((storage / "blobs" / p).stat().st_size for p in _files_under(storage / "blobs"))
    capsys.readouterr()
    assert main(["models", "remove", "tiny-sd"]) == 0
    said = capsys.readouterr().out
    freed = float(re.search(r"([\d.]+) MB freed", said)[1]) * 1e6
    assert abs(freed - held) < 0.1e6
    assert _files_under(storage / "blobs") == [] and status(entry("tiny-sd")).installed is None
    assert main(["models", "remove", "tiny-sd"]) == 2
    assert "not installed" in capsys.readouterr().err


def test_a_folder_placed_by_hand_is_used_without_asking_the_network(hub, repos, capsys) -> None:
    from retrieval.embed import make_embedder

    folder = manual_folder("tiny-clip")
    for path, data in repos["test/tiny-clip"].files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    assert main(["models", "pull", "tiny-clip"]) == 0
    assert "placed by hand" in capsys.readouterr().out and hub.log == []
    found = status(entry("tiny-clip")).installed
    assert found.how == "by hand" and found.folder == folder
    assert make_embedder("tiny-clip").embed_queries(["a cat"]).shape == (1, 32)
    (folder / "open_clip_model.safetensors").write_bytes(b"short")  # not the pinned size
    st = status(entry("tiny-clip"))
    assert st.installed is None and "pins" in st.problem


def test_a_non_commercial_model_asks_first_and_auto_never_takes_it(hub, capsys) -> None:
    from generator import resolve_auto

    assert main(["models", "pull", "tiny-sd-nc", "--quiet"]) == 2  # no terminal to ask on
    err = capsys.readouterr().err
    assert "Research only (tests)" in err and "--accept-licence" in err
    assert hub.log == []
    assert main(["models", "pull", "tiny-sd-nc", "--quiet", "--accept-licence"]) == 0
    choice = resolve_auto()
    assert choice.spec == "standin" and "tiny-sd-nc installed but not taken" in choice.line
    assert main(["models", "pull", "tiny-sd", "--quiet"]) == 0
    choice = resolve_auto()
    assert choice.spec == "tiny-sd" and choice.line.startswith("generation: tiny-sd@")


def test_a_catalogue_pin_the_hub_contradicts_is_refused(hub, tmp_path, monkeypatch,
                                                       capsys) -> None:
    user = Path(os.environ["MONTAGE_MODELS_FILE"])
    user.write_text(user.read_text().replace(hub.repos["test/tiny-clip"].sha256(
        "open_clip_model.safetensors"), "0" * 64))
    assert main(["models", "pull", "tiny-clip"]) == 2
    assert "the hub and the catalogue disagree" in capsys.readouterr().err
    assert hub.downloads("open_clip_model.safetensors") == []


def test_check_loads_each_installed_model_and_times_it(hub, capsys) -> None:
    for name in ("tiny-clip", "tiny-sd"):
        assert main(["models", "pull", name, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["models", "check", "--json"]) == 0
    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(results) == {"tiny-clip", "tiny-sd"}
    assert results["tiny-clip"]["ok"] and results["tiny-clip"]["dim"] == 32
    assert results["tiny-sd"]["ok"] and results["tiny-sd"]["run_s"] > 0
    assert "text-to-image" in results["tiny-sd"]["what"]
    shutil.rmtree(status(entry("tiny-sd")).installed.folder / "unet")
    assert main(["models", "check", "tiny-sd"]) == 2  # a broken model fails its check
    assert "missing" in capsys.readouterr().out
