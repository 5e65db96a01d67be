"""Run :func:`retrieval.analysis.analyse.analyse_file` for many files, in worker processes.

Decoding, shot detection and the face / people / motion analysis run in ``workers``
processes while the calling process embeds keyframes with the model, so every core is busy.
Processes rather than threads: PySceneDetect and dlib hold the GIL for much of their work.
Workers are spawned (not forked) so they never inherit the parent's torch threads; they import
no torch. Results come back as they finish, at most ``2 * workers + 1`` files in flight so
memory stays bounded. A worker whose parent dies without shutting the pool down (SIGKILL, the
OOM killer) ends itself instead of waiting for work forever.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .analyse import FileAnalysis, Settings, analyse_file

logger = logging.getLogger(__name__)

PARENT_POLL_S = 0.5  # how often a worker checks that the indexing process is still alive


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process once ``parent`` is gone (it is then re-parented)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def default_workers(jobs: int) -> int:
    """Worker processes for ``jobs`` files: none for one file (spawning costs more than it
    saves), else one per core. The embedding left to this process is light beside a worker's
    decoding and analysis (about a fifth of it, with the classifier in ONNX Runtime), so one
    worker per core keeps every core busy: on 2 cores, 2 workers indexed bench/index.py's
    library in 123 s against 158 s with 1, for the same CPU seconds."""
    cores = os.cpu_count() or 1
    if jobs < 2 or cores < 2:
        return 0
    return max(1, min(jobs, cores))


def analyse_all(root: Path, files: list[tuple[str, str]], settings: Settings,
                workers: int, before_local: Callable[[], None] | None = None
                ) -> Iterator[FileAnalysis]:
    """Analyse ``files`` ((relative path, kind) pairs); yields results as they complete.

    ``workers=0`` runs everything in this process, in order. ``before_local`` is called before
    this process analyses anything itself (after a worker died), e.g. to wait for a thread
    that uses the same models.
    """
    if workers <= 0:
        for rel, kind in files:
            yield analyse_file(str(root), rel, kind, settings)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    todo = list(files)
    limit = 2 * workers + 1
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    running: dict = {}  # future -> (rel, kind)
    broken = False
    try:
        while todo or running:
            while todo and len(running) < limit:
                rel, kind = todo.pop(0)
                running[pool.submit(analyse_file, str(root), rel, kind, settings)] = (rel, kind)
            done, _ = wait(set(running), return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    todo.insert(0, job)
                    broken = True
                    continue
                yield result
            if broken:
                break
    finally:
        for future in running:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    if broken:  # a worker died (killed, out of memory): finish the same work in this process
        todo = sorted(set(todo) | set(running.values()), key=files.index)
        logger.warning("an analysis worker process died; analysing the remaining %d files in "
                       "this process", len(todo))
        if before_local:
            before_local()
        for rel, kind in todo:
            yield analyse_file(str(root), rel, kind, settings)
