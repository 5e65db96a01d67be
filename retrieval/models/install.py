"""`montage models pull / remove`: fetch a catalogue model into the hub cache, or free it.

A pull reads the hub's model info at the pinned commit (or resolves the revision, for an entry
that pins none), checks it against what the catalogue pins, checks the free disk space, then
downloads each file (resuming a partial one) and checks its content, and only then writes the
record that makes the model count as installed. A file that arrives corrupt is deleted and
fetched once more; a second failure stops with the file, its URL and where a model folder can
be placed by hand. Nothing is ever downloaded without this being called, and nothing here is
called when ``HF_HUB_OFFLINE`` is set.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from planner.errors import ModelError

from .entries import Entry, entry
from .store import (Installed, InstalledFile, forget, free_bytes, hub_cache, manual_folder,
                    offline, read_record, remove_by_hand, status, write_record)

logger = logging.getLogger(__name__)

MIN_HEADROOM = 100 << 20  # bytes left free after a pull, at least...
HEADROOM_SHARE = 0.02  # ...or this share of the download


@dataclass(frozen=True)
class PullPlan:
    entry: Entry
    commit: str
    files: tuple  # hub.RemoteFile, in download order
    total: int  # bytes of all the files
    have: int  # bytes already in the cache (whole blobs, or partial downloads to resume)

    @property
    def need(self) -> int:
        return self.total - self.have


def manual_hint(e: Entry) -> str:
    return (f"or, without a network, place the files of {e.repo} (revision "
            f"{e.revision or 'main'}: {', '.join(f.path for f in e.files)}) in "
            f"{manual_folder(e.name)}/ at the same paths")


def plan_pull(e: Entry) -> PullPlan:
    """What pulling ``e`` would fetch (reads the hub's model info: needs the network)."""
    from . import hub

    if offline():
        raise ModelError(f"cannot pull {e.name}: HF_HUB_OFFLINE is set, so nothing is downloaded",
                         hint="unset HF_HUB_OFFLINE on a machine with a network, " + manual_hint(e))
    remote = hub.remote(e.repo, e.revision)
    if e.revision and remote.commit != e.revision:
        raise ModelError(f"the hub answered {e.repo}@{e.revision} with commit {remote.commit}",
                         hint="is HF_ENDPOINT a Hugging Face Hub? " + manual_hint(e))
    chosen: dict[str, object] = {}
    for spec in e.files:
        hits = sorted(p for p in remote.files if spec.matches(p))
        if not hits:
            raise ModelError(f"{e.repo} at {remote.commit[:12]} has no file {spec.path}",
                             hint="the catalogue entry names a file the repository lacks: fix "
                                  "it in your models.toml, or report it")
        for p in hits:
            rf = remote.files[p]
            if spec.size is not None and rf.size != spec.size:
                raise ModelError(f"{e.repo}@{remote.commit[:12]}: {p} has {rf.size} bytes on the "
                                 f"hub, the catalogue pins {spec.size}; not pulled",
                                 hint="the hub and the catalogue disagree: " + manual_hint(e))
            if spec.sha256 and rf.sha256 != spec.sha256:
                raise ModelError(f"{e.repo}@{remote.commit[:12]}: {p} has sha256 "
                                 f"{rf.sha256 or '(none)'} on the hub, the catalogue pins "
                                 f"{spec.sha256}; not pulled",
                                 hint="the hub and the catalogue disagree: " + manual_hint(e))
            chosen[p] = rf
    files = tuple(chosen[p] for p in sorted(chosen, key=lambda p: chosen[p].size))
    cache = hub_cache()
    have = sum(hub.have_bytes(e.repo, rf, cache) for rf in files)
    return PullPlan(e, remote.commit, files, sum(rf.size for rf in files), have)


def pull(name: str, *, confirm: Callable[[Entry], bool] | None = None,
         progress: bool = True) -> tuple[Installed, bool]:
    """Install ``name``: (what is installed, whether anything was downloaded).

    ``confirm(entry)`` is asked before a model whose licence is not commercial-friendly is
    fetched (None: refuse such models). An installed model is not fetched again; a folder
    placed by hand is used as it is (its pinned hashes checked), with no network call.
    """
    from . import hub

    e = entry(name)
    st = status(e)
    if st.installed is not None and st.installed.how == "by hand":
        _check_by_hand(e, st.installed)
        return st.installed, False
    if st.installed is not None and not st.problem:
        return st.installed, False
    if not e.commercial and not (confirm is not None and confirm(e)):
        raise ModelError(f"{e.name} was not pulled: its licence ({e.licence}) was not accepted",
                         hint=f"read {e.licence_url or 'the licence'}; pull it with "
                              f"--accept-licence if its terms fit your use")
    plan = plan_pull(e)
    cache = hub_cache()
    cache.mkdir(parents=True, exist_ok=True)
    free = free_bytes(cache)
    headroom = max(MIN_HEADROOM, int(HEADROOM_SHARE * plan.need))
    if plan.need + headroom > free:
        raise ModelError(
            f"not enough disk space to pull {e.name}: it needs {_size(plan.need)} more "
            f"(+{_size(headroom)} to spare), {cache} has {_size(free)} free",
            hint="free some space, or set HF_HOME (or HF_HUB_CACHE) to a bigger disk")
    from tqdm import tqdm

    bar = tqdm(total=plan.total, initial=plan.have, unit="B", unit_scale=True,
               unit_divisor=1024, desc=f"pull {e.name}", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    done: list[InstalledFile] = []
    try:
        for rf in plan.files:
            _fetch_twice(e, plan.commit, rf, cache, bar)
            done.append(InstalledFile(rf.path, rf.size, rf.sha256, rf.blob_id))
    finally:
        bar.close()
    accepted = not e.commercial
    return write_record(e, plan.commit, done, accepted), True


def _fetch_twice(e: Entry, commit: str, rf, cache, bar) -> None:
    """One file: a failed or corrupt download is tried once more, then stops with the file,
    its URL and the folder a copy can be placed in by hand."""
    from . import hub

    def progress(n: int) -> None:
        if n:
            bar.update(n)

    url = hub.url_of(e.repo, commit, rf.path)
    for attempt in (1, 2):
        start, before = bar.n, hub.have_bytes(e.repo, rf, cache)
        try:
            hub.fetch(e.repo, commit, rf, cache, progress)
            return
        except hub.Corrupt as exc:
            bar.update(-(bar.n - start) - before)  # its bytes come again
            if attempt == 2:
                raise ModelError(f"{rf.path} of {e.name} arrived corrupt twice ({exc}); it was "
                                 f"deleted: {url}",
                                 hint="try again later or from another HF_ENDPOINT, "
                                      + manual_hint(e)) from None
            logger.warning("%s; deleted, downloading it once more", exc)
        except hub.Transfer as exc:
            if attempt == 2:
                raise ModelError(f"downloading {rf.path} of {e.name} failed twice ({exc}): {url}",
                                 hint="run the same pull again to resume where it stopped, "
                                      + manual_hint(e)) from None
            logger.warning("download of %s broke off (%s); trying once more", rf.path, exc)


def _check_by_hand(e: Entry, found: Installed) -> None:
    """The pinned hashes of a hand-placed folder (sizes were checked when it was found)."""
    from .hub import file_sha256

    for f in found.files:
        if f.sha256 and file_sha256(found.folder / f.path) != f.sha256:
            raise ModelError(f"{found.folder / f.path} does not have the sha256 the catalogue "
                             f"pins for {e.name} ({f.sha256})",
                             hint="copy the file again from the repository at the pinned "
                                  "revision, or remove the folder and pull")


def remove(name: str) -> int:
    """Uninstall ``name``: its hub-cache snapshot (blobs another revision links stay), a
    folder placed by hand, and the record; the bytes freed. Not installed: a ModelError."""
    from .hub import delete_revision

    e = entry(name)
    freed, found = 0, False
    if manual_folder(e.name).is_dir():
        freed += remove_by_hand(e)
        found = True
    rec = read_record(e.name)
    if rec is not None:
        freed += delete_revision(e.repo, rec.revision, hub_cache())
        forget(e.name)
        found = True
    if not found:
        raise ModelError(f"{e.name} is not installed", hint="montage models list shows what is")
    return freed


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


__all__ = ["PullPlan", "manual_hint", "plan_pull", "pull", "remove"]
