"""The Hugging Face Hub: the one module that imports huggingface_hub (on first use).

Downloads go into huggingface_hub's own cache layout (``blobs/``, ``snapshots/<commit>/``), so
other tools share the files, with what huggingface_hub 2.4 leaves out added here:

- **Resume after a kill.** huggingface_hub writes each download to a temporary file unique to
  the process and deletes it on failure, so a killed download starts again from nothing. Here
  the partial file is ``blobs/<etag>.incomplete``, kept across processes under the hub's own
  per-file lock, and continued with a Range request (``file_download.http_get``, which also
  retries a dropped connection from where it stopped).
- **Content checks.** huggingface_hub checks only a file's size. Here every file is hashed
  once it is whole and compared with the hub's model info at the pinned commit: an LFS file's
  sha256, any other file's git blob id. A mismatch deletes the file (nothing half-installed).

The snapshot's link to each verified blob is made by ``hf_hub_download`` itself (it finds the
blob and only links it), so the cache is exactly what huggingface_hub would have written.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from planner.errors import ModelError

from .store import endpoint, repo_folder

HASH_CHUNK = 8 << 20
_ETAG = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # a git blob id or a sha256: a file name


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str = ""  # LFS files
    blob_id: str = ""  # the git object id (every file)


@dataclass(frozen=True)
class Remote:
    """A repository at one commit, as the hub's model info describes it."""

    repo: str
    commit: str
    files: dict[str, RemoteFile]


class Corrupt(Exception):
    """A downloaded file whose content is not what the hub's model info says."""


class Transfer(Exception):
    """A download that broke off (the partial file is kept for the next try)."""


def remote(repo: str, revision: str) -> Remote:
    """The model info of ``repo`` at ``revision`` with every file's size and hash."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision or None,
                                                     files_metadata=True)
    except Exception as exc:  # noqa: BLE001 - mapped to one user-facing error below
        raise _error(exc, f"cannot read the model info of {repo}"
                          f"{'@' + revision if revision else ''} from {endpoint()}") from None
    files = {}
    for s in info.siblings or []:
        lfs = getattr(s, "lfs", None)
        size = s.size if s.size is not None else (lfs.size if lfs else None)
        if size is None:
            raise ModelError(f"the hub's model info of {repo} gives no size for {s.rfilename}",
                             hint=f"is {endpoint()} a Hugging Face Hub?")
        files[s.rfilename] = RemoteFile(s.rfilename, int(size), lfs.sha256 if lfs else "",
                                        s.blob_id or "")
    if not info.sha:
        raise ModelError(f"the hub's model info of {repo} names no commit",
                         hint=f"is {endpoint()} a Hugging Face Hub?")
    return Remote(repo, info.sha, files)


def url_of(repo: str, commit: str, path: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, path, revision=commit, endpoint=endpoint())


def have_bytes(repo: str, rf: RemoteFile, cache: Path) -> int:
    """Bytes of ``rf`` already here: a whole blob, or a partial download to resume."""
    blobs = repo_folder(repo, cache) / "blobs"
    etag = rf.sha256 or rf.blob_id
    if not etag:
        return 0
    for path in (blobs / etag, blobs / f"{etag}.incomplete"):
        try:
            return min(path.stat().st_size, rf.size)
        except OSError:
            continue
    return 0


def fetch(repo: str, commit: str, rf: RemoteFile, cache: Path, progress) -> Path:
    """Download (or resume, or find) one file into the hub cache, check its content, and link
    it into ``snapshots/<commit>/``; returns the linked path. ``progress(n)`` hears each chunk.

    Raises :class:`Corrupt` (the bad file is deleted) or :class:`Transfer` (the partial file is
    kept), or a ModelError for what retrying cannot fix.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.file_download import get_hf_file_metadata, http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    url = url_of(repo, commit, rf.path)
    headers = build_hf_headers()
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint(), headers=dict(headers))
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"cannot reach {url}") from None
    if meta.commit_hash and meta.commit_hash != commit:
        raise ModelError(f"{url} answered for commit {meta.commit_hash}, not {commit}",
                         hint=f"is {endpoint()} a Hugging Face Hub mirror?")
    etag = meta.etag or ""
    expected = rf.sha256 or rf.blob_id
    if not _ETAG.match(etag) or (expected and etag != expected):
        raise ModelError(f"{url}: the hub's file id {etag or '(none)'} is not the {expected} "
                         f"its model info gives", hint="try again later, or another HF_ENDPOINT")
    storage = repo_folder(repo, cache)
    blob = storage / "blobs" / etag
    lock = cache / ".locks" / storage.name / f"{etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        if blob.exists():
            if not _matches(blob, rf):  # put there by another tool, or damaged since
                blob.unlink()
                raise Corrupt(f"{blob} (already in the hub cache) does not match the hub")
            progress(0)
        else:
            part = blob.with_name(blob.name + ".incomplete")
            have = part.stat().st_size if part.exists() else 0
            if have > rf.size:
                part.unlink()
                have = 0
            if urlparse(meta.location).netloc != urlparse(url).netloc:
                headers.pop("authorization", None)  # a CDN: no token (as huggingface_hub does)
            try:
                with open(part, "ab") as fh:
                    http_get(meta.location, fh, resume_size=have, headers=headers,
                             expected_size=rf.size, displayed_filename=rf.path,
                             tqdm_class=_bar_class(progress))
            except Exception as exc:  # noqa: BLE001 - transport errors keep the partial file
                raise Transfer(f"{rf.path}: {_first_line(exc)}") from None
            if not _matches(part, rf):
                part.unlink()
                raise Corrupt(f"{rf.path}: its content does not match the hub's "
                              f"{'sha256' if rf.sha256 else 'git blob id'} {expected}")
            os.replace(part, blob)
    try:
        return Path(hf_hub_download(repo, rf.path, revision=commit, cache_dir=cache,
                                    endpoint=endpoint()))
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"cannot link {rf.path} into the hub cache") from None


def _matches(path: Path, rf: RemoteFile) -> bool:
    """Whether the file's size and content are what the hub says (sha256 for LFS files, the
    git blob id for the rest)."""
    if path.stat().st_size != rf.size:
        return False
    if rf.sha256:
        return file_sha256(path) == rf.sha256
    if rf.blob_id:
        h = hashlib.sha1(b"blob %d\0" % rf.size)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
                h.update(chunk)
        return h.hexdigest() == rf.blob_id
    return True


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _bar_class(progress):
    """A progress-bar class for ``http_get`` that hands every chunk to ``progress`` (one bar
    for the whole pull, as rclip does), instead of a bar per file."""

    class Share:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> bool:
            return False

        def update(self, n: int = 1) -> None:
            progress(n)

        def close(self) -> None:
            pass

    return Share


def delete_revision(repo: str, commit: str, cache: Path) -> int:
    """Delete one snapshot from the hub cache with huggingface_hub's own cache manager (blobs
    that another revision still links are kept); the bytes freed. Partial downloads of the
    repository go too."""
    from huggingface_hub import scan_cache_dir

    freed = 0
    storage = repo_folder(repo, cache)
    for part in (storage / "blobs").glob("*.incomplete") if storage.is_dir() else ():
        freed += part.stat().st_size
        part.unlink(missing_ok=True)
    if not (storage / "snapshots" / commit).exists():
        return freed
    strategy = scan_cache_dir(cache).delete_revisions(commit)
    freed += int(strategy.expected_freed_size)
    strategy.execute()
    return freed


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _error(exc: BaseException, what: str) -> ModelError:
    """One user-facing error for a hub failure (no traceback)."""
    from huggingface_hub import errors

    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return ModelError(f"{what}: HF_HUB_OFFLINE is set", hint="unset HF_HUB_OFFLINE to download")
    if isinstance(exc, errors.RevisionNotFoundError):
        return ModelError(f"{what}: the hub has no such revision",
                          hint="the catalogue's revision may be wrong: fix it in your models.toml")
    if isinstance(exc, (errors.RepositoryNotFoundError, errors.GatedRepoError)):
        return ModelError(f"{what}: the repository is missing, private or gated",
                          hint="log in with `hf auth login` if it is gated, or check the repo id")
    if isinstance(exc, errors.EntryNotFoundError):
        return ModelError(f"{what}: no such file at that commit", hint="check the catalogue entry")
    return ModelError(f"{what}: {_first_line(exc)}",
                      hint="check your connection (or HF_ENDPOINT), then run the pull again: it "
                           "resumes")


__all__ = ["Corrupt", "Remote", "RemoteFile", "Transfer", "delete_revision", "fetch",
           "file_sha256", "have_bytes", "remote", "url_of"]
