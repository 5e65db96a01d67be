"""A Hugging Face Hub on loopback, for tests and for bench/gpu.py on machines without internet.

It answers the routes huggingface_hub 2.4 calls to download a model (read from its
``hf_api.model_info`` and ``file_download``): ``GET /api/models/{repo}[/revision/{rev}]``
(model info; with ``?blobs=true`` each file's size, git blob id and LFS sha256) and
``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` (the LFS sha256,
or the git blob id), ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, ``Content-Length`` and
``Range`` (206 with ``Content-Range``). Repositories are built in memory from real files.

Knobs for fault tests: ``corrupt[path] = n`` serves the next ``n`` downloads of a file with a
byte flipped (same size); ``stall[path] = n`` sends the first ``n`` bytes of the next download
and then holds the connection until :meth:`release`; ``claim[path] = n`` makes the model info
give the file ``n`` bytes (a model bigger than the disk); ``log`` keeps every request.
Loopback only; it serves only the bytes it was given, never a path from the request.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".gguf")


@dataclass
class Repo:
    repo: str
    commit: str
    files: dict[str, bytes]

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def blob_id(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def etag(self, path: str) -> str:
        return self.sha256(path) if self.is_lfs(path) else self.blob_id(path)

    def info(self, with_files: bool, claim: dict[str, int] | None = None) -> dict:
        siblings = []
        for p in sorted(self.files):
            s = {"rfilename": p}
            if with_files:
                size = (claim or {}).get(p, len(self.files[p]))
                s.update(size=size, blobId=self.blob_id(p))
                if self.is_lfs(p):
                    s["lfs"] = {"size": size, "sha256": self.sha256(p), "pointerSize": 134}
            siblings.append(s)
        return {"_id": self.commit[:24], "id": self.repo, "modelId": self.repo, "sha": self.commit,
                "private": False, "disabled": False, "gated": False, "downloads": 0,
                "likes": 0, "tags": [], "siblings": siblings,
                "lastModified": "2025-01-01T00:00:00.000Z"}


def repo_from_folder(repo: str, folder: Path, commit: str | None = None) -> Repo:
    """A repository holding every file under ``folder`` (at their relative paths)."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes()
             for p in sorted(Path(folder).rglob("*")) if p.is_file()}
    if commit is None:
        h = hashlib.sha1(repo.encode())
        for p in sorted(files):
            h.update(p.encode() + hashlib.sha1(files[p]).digest())
        commit = h.hexdigest()
    return Repo(repo, commit, files)


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    corrupt: dict[str, int] = field(default_factory=dict)
    stall: dict[str, int] = field(default_factory=dict)
    claim: dict[str, int] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def add(self, repo: Repo) -> Repo:
        self.repos[repo.repo] = repo
        return repo

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def release(self) -> None:
        self._released.set()

    def downloads(self, path: str) -> list[str]:
        """The Range header of every GET of a file (\"\" for a whole download)."""
        return [r for m, p, r in self.log if m == "GET" and p.endswith("/" + path)]

    def start(self) -> "Hub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, head=True)

            def do_GET(self) -> None:
                hub._answer(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "Hub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- routes ------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        url = urlparse(h.path)
        path = unquote(url.path)
        self.log.append((h.command, path, h.headers.get("Range", "")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._info(h, parts[2:], "blobs=true" in (url.query or ""))
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        self._send(h, 404, b"not found", {"X-Error-Code": "EntryNotFound"})

    def _repo_at(self, repo: str, rev: str) -> Repo | None:
        r = self.repos.get(repo)
        return r if r is not None and rev in ("main", r.commit) else None

    def _info(self, h, parts: list[str], with_files: bool) -> None:
        repo = "/".join(parts[:2])
        rev = parts[3] if len(parts) >= 4 and parts[2] == "revision" else "main"
        if repo not in self.repos:
            return self._send(h, 404, b'{"error": "Repository not found"}',
                              {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"})
        r = self._repo_at(repo, rev)
        if r is None:
            return self._send(h, 404, b'{"error": "Invalid rev id"}',
                              {"X-Error-Code": "RevisionNotFound",
                               "Content-Type": "application/json"})
        self._send(h, 200, json.dumps(r.info(with_files, self.claim)).encode(),
                   {"Content-Type": "application/json"})

    def _resolve(self, h, repo: str, rev: str, path: str, head: bool) -> None:
        r = self._repo_at(repo, rev)
        if r is None:
            return self._send(h, 404, b"", {"X-Error-Code": "RevisionNotFound"}, head=head)
        if path not in r.files:
            return self._send(h, 404, b"", {"X-Error-Code": "EntryNotFound",
                                            "X-Repo-Commit": r.commit}, head=head)
        data = r.files[path]
        etag = r.etag(path)
        headers = {"X-Repo-Commit": r.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if r.is_lfs(path):
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        if head:
            return self._send(h, 200, data, headers, head=True)
        if self.corrupt.get(path, 0) > 0:
            self.corrupt[path] -= 1
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        rng = h.headers.get("Range", "")
        status = 200
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        stall = self.stall.pop(path, None)
        if stall is None:
            return self._send(h, status, body, headers)
        h.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(body[:stall])
            h.wfile.flush()
            self._released.wait()
        except OSError:
            pass

    @staticmethod
    def _send(h, status: int, body: bytes, headers: dict, head: bool = False) -> None:
        h.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            try:
                h.wfile.write(body)
            except OSError:
                pass


__all__ = ["Hub", "Repo", "repo_from_folder"]
