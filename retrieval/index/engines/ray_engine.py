"""Index a library on a Ray cluster: one Ray task per file, results kept as shards, one merge.

The driver (this process) plans the run exactly as the local engine does (what changed since
the last index), then sends each file to a Ray task (:func:`retrieval.index.engines.task.index_file`:
decode, shots, features and embedding on the worker, with the local engine's own code). Each
result is written as a shard keyed by the file's content hash as soon as it comes back
(:mod:`retrieval.index.engines.shards`), so an interrupted or partly failed run resumes: the next run
takes the finished files from their shards. Ray runs a task again on another worker when its
worker dies (``max_retries``), so a dead worker costs only its own files. At the end the driver
merges the shards with the unchanged files and commits them the way the local engine does
(one FAISS file, one SQLite transaction), under the index lock.

The driver loads no model. Workers need montage installed and the library mounted at the same
path as on the driver (paths in the index are relative to the library root, so the index itself
works from any mount point). Ray is imported only here (``pip install 'montage[ray]'``).
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from planner.errors import MontageError

from retrieval.analysis.analyse import Settings
from retrieval.embed.registry import canonical_name
from retrieval.media.cuts import DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD
from retrieval.media.library import MediaFile, check_root, find_media
from ..build import (CHECKPOINT_S, IndexReport, _connect_or_reset, _Entry, _load_kept, _readable,
                     _report, _Run, _usable_meta, switch_set, writable_index_folder)
from ..calibration import ensure as calibrate_if_missing
from ..changes import content_hash, text_sig
from ..largevectors import check_vector_mode, converts
from ..lock import index_lock
from .errors import EngineError
from .shards import (Shard, read_shard, remove_shards, shard_path, shard_sig, sigs_on_disk,
                     write_shard)

logger = logging.getLogger(__name__)

RAY_HINT = "pip install 'montage[ray]' (Ray 2.40 or newer), or index without --engine ray"
CONNECT_TIMEOUT_S = 3.0  # a cluster that has not answered by then is reported as not answering
TASK_RETRIES = 2  # Ray runs a file again this often when its worker dies
IN_FLIGHT_PER_CPU = 2  # tasks submitted ahead per cluster CPU (bounded driver memory)
LOCAL_OBJECT_STORE = 256 << 20  # bytes; results are a few KiB per file
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def import_ray():
    """The ``ray`` module, or an EngineError saying what to install."""
    try:
        import ray
    except ImportError as exc:
        raise EngineError(f"--engine ray needs Ray, which is not installed here ({exc})",
                          hint=RAY_HINT) from exc
    return ray


def probe_address(address: str, root: Path, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """An EngineError within ``timeout`` seconds unless a gRPC server (a Ray head) answers at
    ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``). ``ray.init`` itself waits minutes for a
    head that is down or is not a Ray head, so the address is checked first."""
    local = f"montage index {root}"
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"the Ray address {address!r} is not HOST:PORT or ray://HOST:PORT",
                          hint="`ray status` on the head node prints it, e.g. 10.0.0.5:6379")
    why = ""
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_HTTP2_PREFACE)
            head = s.recv(9)
            if len(head) < 9 or head[3] != 4:  # a gRPC server answers with a SETTINGS frame
                why = "something answers there, but not a Ray head (no gRPC)"
    except socket.timeout:
        why = f"no answer within {timeout:.0f} s"
    except OSError as exc:
        why = exc.strerror or str(exc)
    if why:
        raise EngineError(f"no Ray cluster answers at {address}: {why}",
                          hint=f"check the address (`ray status` on the head node), or index on "
                               f"this machine: {local}")


def connect(ray, address: str | None, workers: int | None, root: Path) -> bool:
    """Join the cluster at ``address`` or start a local Ray; True when this call started it
    (so the run shuts it down). An already initialised Ray (a test session's) is used as is."""
    remote = address not in (None, "", "local", "auto")
    if remote:
        probe_address(address, root)
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if not address or address == "local":
        cpus = workers if workers and workers > 0 else (os.cpu_count() or 1)
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE,
                 **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EngineError(f"cannot join the Ray cluster at {address}: {exc}",
                          hint=f"check `ray status` there, or index on this machine: "
                               f"montage index {root}") from exc
    return True


@dataclass(frozen=True)
class _Spec:
    """What the merge needs of the embedder: its name and width (the driver loads no model)."""

    name: str
    dim: int

    def analyse(self, images, texts):  # the indexer checks its signature; workers embed
        raise RuntimeError("the Ray driver embeds nothing")


def build_index_ray(root: Path, embedder: str = "proxy", *, address: str | None = None,
                    workers: int | None = None, progress: bool = True,
                    threshold: float = DEFAULT_THRESHOLD, min_shot: float = DEFAULT_MIN_SHOT,
                    on_file: Callable[[str, int, int], None] | None = None,
                    checkpoint_s: float = CHECKPOINT_S, vectors: str = "auto",
                    **embedder_options) -> IndexReport:
    """Index (or update the index of) ``root`` on Ray; the same index as
    :func:`retrieval.index.build.build_index`. ``address``: a running cluster (None: a local Ray
    with ``workers`` CPUs, default all cores). ``embedder`` is a name; ``embedder_options``
    go to it on every worker. Files that failed on the cluster are named in an EngineError
    after the others are committed; running again retries only them."""
    started = time.perf_counter()
    check_vector_mode(vectors)
    if not isinstance(embedder, str):
        raise EngineError("--engine ray builds the embedder on every worker, so it takes an "
                          "embedder name", hint="pass a name such as 'proxy' or 'clip:...'")
    ray = import_ray()
    root = check_root(root).resolve()
    media = find_media(root)
    name = canonical_name(embedder)
    settings = Settings(threshold, min_shot)
    folder = writable_index_folder(root)
    with index_lock(folder, "montage index --engine ray"), \
            nullcontext(switch_set(folder, name)), closing(_connect_or_reset(folder)) as con:
        old_meta = _usable_meta(folder, con, name, settings.as_dict())
        from .. import store

        plan = _plan(root, media, store.read_files(con) if old_meta else {})
        if old_meta and not plan.to_index and not plan.dropped and \
                not converts(vectors, old_meta):
            if plan.touched:
                store.touch_files(con, plan.touched)
            calibrate_if_missing(folder, con, old_meta, _Spec(name, int(old_meta["dim"])))
            return _readable(root, _report(media, {}, plan.kept_paths, plan.skipped, started,
                                           name, folder))
        kept = _load_kept(folder, con, old_meta, plan) if old_meta else {}
        if old_meta and len(kept) < len(plan.kept_paths):  # old vectors unreadable
            plan.to_index += [m for m in media if m.path in plan.kept_paths and m.path not in kept]
            plan.to_index.sort(key=lambda m: m.path)
        dim = int(old_meta["dim"]) if old_meta else 0
        run = _Run(root, folder, con, _Spec(name, dim), settings, kept, plan, checkpoint_s,
                   vectors)
        failed = _Cluster(ray, root, folder, run, embedder, embedder_options).go(
            address, workers, progress, on_file)
        if not run.emb.dim:
            width = next((e.vectors.shape[1] for e in run.fresh.values()), 0)
            if not width:
                from retrieval.embed.registry import make_embedder

                width = make_embedder(embedder, **embedder_options).dim
            run.emb = _Spec(name, int(width))
        run.commit(final=not failed)
    if failed:
        listed = "; ".join(f"{p} ({why})" for p, why in sorted(failed.items())[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise EngineError(f"{len(failed)} file(s) failed on the Ray cluster: {listed}{more}",
                          hint="the other files are indexed; run the same command again to "
                               "retry only these")
    remove_shards(folder)
    return _readable(root, _report(media, run.fresh, set(kept) | set(run.fresh), run.skipped,
                                   started, name, folder))


def _plan(root: Path, media: list[MediaFile], old: dict):
    from ..changes import plan_changes

    return plan_changes(root, media, old)


class _Cluster:
    """The Ray side of one run: resume from shards, submit the rest, collect as they finish."""

    def __init__(self, ray, root: Path, folder: Path, run: _Run, spec: str, options: dict):
        self.ray, self.root, self.folder, self.run = ray, root, folder, run
        self.spec, self.options = spec, options
        self.settings: Settings = run.settings
        self.failed: dict[str, str] = {}
        self.resumed = 0

    def _sig(self, m: MediaFile) -> str:
        return shard_sig(m.path, text_sig(self.run.plan.texts[m.path]), self.run.emb.name,
                         self.settings.as_dict())

    def _take(self, m: MediaFile, shard: Shard) -> None:
        record = {**shard.record, "size": m.size, "mtime_ns": m.mtime_ns}
        self.run.fresh[m.path] = _Entry(record, list(shard.shots), [list(t) for t in shard.terms],
                                        shard.vectors, dict(shard.moments))
        self.run.skipped.pop(m.path, None)

    def _resume(self, todo: list[MediaFile]) -> list[MediaFile]:
        """Take the files whose shard an earlier run left; returns the ones still to do."""
        sigs = sigs_on_disk(self.folder)
        left = []
        for m in todo:
            sig = self._sig(m)
            shard = None
            if sig in sigs:
                try:
                    path = shard_path(self.folder, content_hash(self.root / m.path, m.size), sig)
                    shard = read_shard(path) if path.is_file() else None
                except OSError:
                    shard = None
            if shard is None:
                left.append(m)
            else:
                self._take(m, shard)
                self.resumed += 1
        if self.resumed:
            logger.info("resumed %d files from the shards of an earlier run", self.resumed)
        return left

    def go(self, address, workers, progress: bool, on_file) -> dict[str, str]:
        """Run every file still to do; returns path -> why, for files that failed on Ray."""
        from tqdm import tqdm

        todo = self._resume(list(self.run.plan.to_index))
        total, done = len(self.run.plan.to_index), self.resumed
        if not todo:
            return {}
        ray = self.ray
        started_here = connect(ray, address, workers, self.root)
        bar = tqdm(total=total, initial=done, desc="indexing (ray)", unit="file",
                   file=sys.stderr, disable=not progress, dynamic_ncols=True)
        running: dict = {}
        try:
            from .task import CRASH_ENV, index_file

            env = {CRASH_ENV: os.environ[CRASH_ENV]} if os.environ.get(CRASH_ENV) else None
            remote = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(index_file)
            if env:
                remote = remote.options(runtime_env={"env_vars": env})
            limit = max(2, int(ray.cluster_resources().get("CPU", 1)) * IN_FLIGHT_PER_CPU)
            queue = list(todo)
            while queue or running:
                while queue and len(running) < limit:
                    m = queue.pop(0)
                    ref = remote.remote(str(self.root), m, self.run.plan.texts[m.path],
                                        self.settings, self.spec, self.options, 1)
                    running[ref] = m
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    m = running.pop(ref)
                    self._collect(m, ref)
                    done += 1
                    bar.update(1)
                    if on_file:
                        on_file(m.path, done, total)
        except BaseException:
            for ref in running:
                ray.cancel(ref)  # not force: the workers live on, models loaded
            if self.run.fresh:
                logger.warning("indexing interrupted: %d files are kept as shards in %s; the "
                               "next run takes them", len(self.run.fresh), self.folder)
            raise
        finally:
            bar.close()
            if started_here:
                ray.shutdown()
        return self.failed

    def _collect(self, m: MediaFile, ref) -> None:
        """One finished task: its shard written and taken, its read error recorded, or (a task
        that failed on Ray itself) its file listed as failed."""
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, MontageError):  # a missing model on the workers: stop here
                raise cause
            self.failed[m.path] = f"{type(cause or exc).__name__}: {cause or exc}"[:300]
            logger.warning("the task of %s failed: %s", m.path, self.failed[m.path])
            return
        except self.ray.exceptions.RayError as exc:  # worker died TASK_RETRIES + 1 times, ...
            self.failed[m.path] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            logger.warning("the task of %s failed: %s", m.path, self.failed[m.path])
            return
        if isinstance(result, str):  # the file cannot be read: skipped and named, as locally
            self.run._skip(_Unread(m.path, result))
            return
        write_shard(self.folder, self._sig(m), result)
        self._take(m, result)


@dataclass(frozen=True)
class _Unread:
    """The two fields of a FileAnalysis that the indexer's skip record reads."""

    path: str
    reason: str


__all__ = ["build_index_ray", "connect", "import_ray", "probe_address"]
