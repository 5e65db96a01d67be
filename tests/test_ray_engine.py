"""`montage index --engine ray`: on one local Ray (num_cpus=2) per test session, real files."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from montage.cli import main
from planner.errors import LibraryError
from retrieval import build_index, open_index
from retrieval.index.engines import EngineError
from retrieval.index.engines.shards import shard_dir
from retrieval.index.engines.task import CRASH_ENV
from retrieval.index.store import DB_NAME
from tests.conftest import make_clip, make_cut_clip, make_still

QUERIES = ["a red screen", "a test pattern", "a blue wall", "green"]


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session, as a cluster of two CPUs."""
    try:
        import ray
    except ImportError:
        pytest.skip("Ray is not installed (pip install 'montage[ray]')")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 << 20,
                 logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def options(model_cache) -> dict:
    """Embedder options for every worker: the session's label cache, one torch thread."""
    return {"cache_dir": model_cache, "threads": 1}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Three cut clips, a plain clip with a sidecar note, a still in a folder, a corrupt file."""
    root = tmp_path_factory.mktemp("ray") / "footage"
    make_cut_clip(root / "cuts.mp4", ["red", "green", "blue"], size="48x48")
    make_cut_clip(root / "more" / "walls.mp4", ["blue", "white"], size="48x48")
    make_clip(root / "plain.mp4", duration=2.0, size="48x48")
    (root / "plain.mp4.txt").write_text("a test pattern on a screen\n", encoding="utf-8")
    make_still(root / "stills" / "still.png", size="48x48", source="smptebars")  # see test_index_safety
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    return root


def _copy(source: Path, to: Path) -> Path:
    shutil.copytree(source, to)
    return to


@pytest.mark.slow  # several seconds; CI runs it with make test-slow
def test_the_ray_index_is_the_local_index(ray_session, source, options, tmp_path) -> None:
    local_root, ray_root = _copy(source, tmp_path / "a"), _copy(source, tmp_path / "b")
    from retrieval.index.engines.ray_engine import build_index_ray

    local = build_index(local_root, "proxy", progress=False, workers=0, **options)
    remote = build_index_ray(ray_root, "proxy", progress=False, **options)
    assert (remote.files_indexed, remote.shots) == (local.files_indexed, local.shots) == (4, 7)
    assert remote.files_skipped == local.files_skipped
    assert [p for p, _ in remote.files_skipped] == ["broken.mp4"]  # named, as locally
    a, b = open_index(local_root), open_index(ray_root)
    assert [s.id for s in a.shots] == [s.id for s in b.shots]
    assert [s.features for s in a.shots] == [s.features for s in b.shots]
    assert [s.labels for s in a.shots] == [s.labels for s in b.shots]
    assert np.allclose(a.vectors.vectors(), b.vectors.vectors(), atol=1e-5)
    for hits_a, hits_b in zip(a.search(QUERIES, top=5), b.search(QUERIES, top=5)):
        assert [h.shot.id for h in hits_a] == [h.shot.id for h in hits_b]
        assert np.allclose([h.score for h in hits_a], [h.score for h in hits_b], atol=1e-4)
        assert [h.moment for h in hits_a] == [h.moment for h in hits_b]
    assert not shard_dir(ray_root / ".montage").exists()  # merged shards are dropped
    # a second run finds nothing to do, as the local engine would
    again = build_index_ray(ray_root, "proxy", progress=False, **options)
    assert (again.files_indexed, again.files_reused) == (0, 4)


def test_a_large_index_built_on_ray_is_the_local_large_index(ray_session, source, options,
                                                              tmp_path) -> None:
    """``--engine ray --vectors large``: the cluster's shards go through the large index's
    append path as the local engine's files do: same rows, same hits."""
    from retrieval.index.engines.ray_engine import build_index_ray

    local_root, ray_root = _copy(source, tmp_path / "a"), _copy(source, tmp_path / "b")
    build_index(local_root, "proxy", progress=False, workers=0, vectors="large", **options)
    build_index_ray(ray_root, "proxy", progress=False, vectors="large", **options)
    a, b = open_index(local_root), open_index(ray_root)
    assert type(a.vectors).__name__ == type(b.vectors).__name__ != "VectorIndex"
    assert [s.id for s in a.shots] == [s.id for s in b.shots]
    for hits_a, hits_b in zip(a.search(QUERIES, top=5), b.search(QUERIES, top=5)):
        assert [h.shot.id for h in hits_a] == [h.shot.id for h in hits_b]


def test_an_interrupted_run_resumes_from_its_shards(ray_session, source, options,
                                                     tmp_path) -> None:
    from retrieval.index.engines.ray_engine import build_index_ray

    root = _copy(source, tmp_path / "lib")
    first: list[str] = []

    def stop_after_two(path: str, done: int, total: int) -> None:
        first.append(path)
        if len(first) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index_ray(root, "proxy", progress=False, on_file=stop_after_two, **options)
    shards = sorted(shard_dir(root / ".montage").glob("*.npz"))
    assert len(shards) == len([p for p in first if p != "broken.mp4"]) >= 1
    second: list[str] = []
    report = build_index_ray(root, "proxy", progress=False,
                             on_file=lambda p, d, t: second.append(p), **options)
    assert not set(first) & set(second) - {"broken.mp4"}  # finished files were not redone
    assert sorted(set(first) | set(second)) == sorted(
        ["broken.mp4", "cuts.mp4", "more/walls.mp4", "plain.mp4", "stills/still.png"])
    assert (report.files_indexed, report.shots) == (4, 7)


@pytest.mark.slow  # a task with its own env vars gets fresh workers, which load the models again
def test_a_worker_that_dies_costs_only_its_file(ray_session, source, options, tmp_path,
                                                 monkeypatch) -> None:
    from retrieval.index.engines.ray_engine import build_index_ray

    root = _copy(source, tmp_path / "lib")
    marker = tmp_path / "died"
    monkeypatch.setenv(CRASH_ENV, f"plain.mp4:{marker}")
    report = build_index_ray(root, "proxy", progress=False, **options)
    assert marker.exists()  # the worker running plain.mp4 did exit mid-task
    assert (report.files_indexed, report.shots) == (4, 7)
    assert "plain.mp4#0" in {s.id for s in open_index(root).shots}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_that_does_not_answer_is_named_within_seconds(source, tmp_path, capsys,
                                                                  monkeypatch) -> None:
    """The address is probed before ``ray.init`` (which waits minutes for a head that is down):
    the refusal is named and Ray is never asked to join."""
    ray = pytest.importorskip("ray")
    joins: list[object] = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: joins.append((a, k)))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `montage index`
    root = _copy(source, tmp_path / "lib")
    address = f"127.0.0.1:{_closed_port()}"
    assert main(["index", str(root), "--engine", "ray", "--address", address, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"no Ray cluster answers at {address}: Connection refused" in err
    assert f"montage index {root}" in err
    assert joins == []


def test_a_port_that_is_not_a_ray_head_is_refused(source, tmp_path, monkeypatch) -> None:
    pytest.importorskip("ray")
    from retrieval.index.engines.ray_engine import probe_address

    sockets: list[socket.socket] = []  # the probe's connection, to read the timeout it waits on
    connect = socket.create_connection
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: sockets.append(connect(*a, **k)) or sockets[-1])
    with socket.socket() as server:  # answers TCP, says nothing (an HTTP server would be alike)
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(EngineError) as refused:  # the probe gives up on its own timeout
            probe_address(address, source, timeout=1.0)
    assert refused.value.message == f"no Ray cluster answers at {address}: no answer within 1 s"
    assert [s.gettimeout() for s in sockets] == [1.0]  # it waited that long, not ray's minutes
    assert f"montage index {source}" in refused.value.hint


def test_the_probe_accepts_a_real_ray_head(ray_session, source) -> None:
    from retrieval.index.engines.ray_engine import connect, probe_address

    address = ray_session.get_runtime_context().gcs_address
    assert probe_address(address, source) is None
    assert probe_address(f"ray://{address}", source) is None  # the scheme is optional
    # the command's path: the head passes the probe, and the running Ray is joined, not restarted
    assert connect(ray_session, address, None, source) is False
    assert ray_session.is_initialized()


def test_a_second_writer_is_refused_by_the_index_lock(ray_session, source, options,
                                                      tmp_path) -> None:
    from retrieval.index.engines.ray_engine import build_index_ray

    root = _copy(source, tmp_path / "lib")
    (root / ".montage").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from retrieval.index.lock import index_lock\n"
         "with index_lock(sys.argv[1], 'montage index --engine ray (cluster A)'):\n"
         "    print('held', flush=True); time.sleep(60)", str(root / ".montage")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LibraryError, match=rf"cluster A\) \(pid {holder.pid} on"):
            build_index_ray(root, "proxy", progress=False, **options)
        with pytest.raises(LibraryError, match="is being written by"):
            build_index(root, "proxy", progress=False, workers=0, **options)
    finally:
        holder.kill()
        holder.wait()
    assert not (root / ".montage" / DB_NAME).exists()  # the refused runs wrote nothing


def test_without_ray_the_engine_says_what_to_install(source, tmp_path, monkeypatch,
                                                     capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where it is absent
    root = _copy(source, tmp_path / "lib")
    assert main(["index", str(root), "--engine", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--engine ray needs Ray" in err and "pip install 'montage[ray]'" in err
