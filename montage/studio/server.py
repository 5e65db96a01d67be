"""The studio's web server: one page, a JSON API and media, for one project (Starlette).

Security, since the server reads the footage and writes the project:
- every request needs the session token (the printed URL carries it once; it becomes an
  HttpOnly, SameSite=Strict cookie and the page drops it from the address bar);
- requests that change anything are POST with the token in a header (which no other site's
  page can send) and, when the browser names one, an Origin of this server;
- the Host header must be one this server answers to (a DNS-rebinding page is refused);
- files are served by id from this project and this library only (see
  :meth:`montage.studio.session.Studio.media`), or by one of a few fixed names, never by a path
  taken from the request;
- the page builds its DOM with ``textContent`` only, under a Content-Security-Policy that allows
  no inline script.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse,
                                 RedirectResponse, Response, StreamingResponse)
from starlette.routing import Route

from planner.errors import MontageError

from montage.studio.media import preview_file, thumbnail_file
from montage.studio.session import EXPORTS, Studio, UnknownItem

COOKIE = "montage_studio"
HEADER = "x-montage-token"
STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"studio.js": "text/javascript", "studio.css": "text/css"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
CHUNK = 256 * 1024
LONG_POLL = 0.3  # seconds a status request waits for a job to finish
MAX_BODY = 16 * 1024 * 1024  # a script of millions of words fits; more is not a script


def create_app(studio: Studio, token: str, hosts: set[str]) -> Starlette:
    """The ASGI app for one studio; ``hosts`` are the Host header values it answers to."""

    def authorised(request: Request) -> bool:
        given = request.cookies.get(COOKIE) or request.headers.get(HEADER) or ""
        return hmac.compare_digest(given.encode(), token.encode())

    async def index(request: Request) -> Response:
        if hmac.compare_digest(request.query_params.get("token", "").encode(), token.encode()):
            response = RedirectResponse("/", status_code=303)  # the token leaves the address bar
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        if not authorised(request):
            return _refused()
        page = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{TOKEN}}", token)
        return HTMLResponse(page)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return _error(404, f"no such file: {name}")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    def project(request: Request) -> Response:
        return Response(studio.page_json(), media_type="application/json")

    def shot(request: Request) -> Response:
        found = studio.shot(request.path_params["id"])
        if found is None:
            return _error(404, f"no shot {request.path_params['id']!r} in the current cut",
                          "reload the page")
        return JSONResponse(found)

    async def status(request: Request) -> Response:
        """The studio's state; ``?after=JOB`` answers as soon as that job is done, or after
        LONG_POLL seconds (the page then shows the stage and asks again)."""
        after = request.query_params.get("after", "")
        if after.isdigit() and len(after) < 10:
            deadline = time.monotonic() + LONG_POLL
            while time.monotonic() < deadline:
                now = await run_in_threadpool(studio.status)
                if now["done"] >= int(after) and now["state"] != "working":
                    return JSONResponse(now)
                await asyncio.sleep(0.02)
        return JSONResponse(await run_in_threadpool(studio.status))

    async def action(request: Request) -> Response:
        name = request.path_params["name"]
        raw = await _body(request)
        if raw is None:
            return _error(413, f"the request body is over {MAX_BODY} bytes",
                          "send a shorter script")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the request body must be JSON")
        except RecursionError:  # CPython's parser gives up on deep nesting: the client's error
            return _error(400, "the request body is JSON nested too deeply",
                          "send a flat JSON object, e.g. {\"text\": \"...\"}")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        handlers = {
            "script": (studio.save_script, {"text": str}),
            "pin": (studio.pin, {"shot": str, "clip": str}),
            "unpin": (studio.unpin, {"shot": str}),
            "ban": (studio.ban, {"clip": str}),
            "unban": (studio.unban, {"clip": str}),
            "trim": (studio.trim, {"shot": str, "steps": int}),
            "generate": (studio.generate, {"shot": str}),
            "style": (studio.set_style, {"style": str}),
            "revert": (studio.revert, {"cut": int}),
            "settings": (studio.set_settings, {"settings": dict}),
        }
        if name not in handlers:
            return _error(404, f"unknown action {name!r}", "one of " + ", ".join(sorted(handlers)))
        fn, fields = handlers[name]
        args = {}
        for key, kind in fields.items():
            value = body.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                return _error(400, f"{name}: {key!r} must be a {kind.__name__}")
            args[key] = value
        try:
            job = await run_in_threadpool(fn, **args)
        except UnknownItem as exc:
            return _error(404, exc.message, exc.hint)
        except MontageError as exc:
            return _error(400, exc.message, exc.hint)
        return JSONResponse({"job": job}, status_code=202)

    def film(request: Request) -> Response:
        cut = request.path_params["cut"]
        current = str(studio.status()["cut"])
        path = studio.playing(int(cut)) if cut == current else None
        if path is None:
            return _error(404, f"cut {cut} is not the current film", "reload the page")
        return ranged(request, path, "video/mp4")

    def made(request: Request, make, media_type: str) -> Response:
        """A thumbnail or preview of a clip of this project, by its id (made on first request)."""
        m = studio.media(request.path_params["token"])
        if m is None:
            return _error(404, "no such clip in this project")
        try:
            path = make(m, studio.project / "cache" / "studio")
        except MontageError as exc:
            return _error(404, exc.message, exc.hint)
        return ranged(request, path, media_type)

    def thumb(request: Request) -> Response:
        return made(request, thumbnail_file, "image/jpeg")

    def preview(request: Request) -> Response:
        return made(request, preview_file, "video/mp4")

    def download(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            path = studio.download(name)
        except MontageError as exc:
            return _error(409, exc.message, exc.hint)
        if path is None:
            return _error(404, f"no such download: {name}",
                          "film.mp4, film.srt, edit.otio, report.md, contact.png or "
                          + ", ".join(EXPORTS))
        return FileResponse(path, filename=name, media_type=_TYPES.get(path.suffix, "application/octet-stream"))

    app = Starlette(routes=[
        Route("/", index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/static/{name}", static),
        Route("/api/project", project),
        Route("/api/status", status),
        Route("/api/shot/{id}", shot),
        Route("/api/{name}", action, methods=["POST"]),
        Route("/media/film/{cut:str}.mp4", film),
        Route("/media/thumb/{token:str}.jpg", thumb),
        Route("/media/preview/{token:str}.mp4", preview),
        Route("/download/{name}", download),
    ])
    return _Guard(app, authorised, hosts)


_TYPES = {".mp4": "video/mp4", ".srt": "application/x-subrip", ".otio": "application/json",
          ".md": "text/markdown; charset=utf-8", ".png": "image/png", ".otioz": "application/zip",
          ".fcpxml": "application/xml", ".xml": "application/xml", ".mlt": "application/xml",
          ".kdenlive": "application/xml", ".edl": "text/plain; charset=utf-8"}


async def _body(request: Request) -> bytes | None:
    """The request's body, or None past MAX_BODY bytes (read no further than that)."""
    try:
        if int(request.headers.get("content-length", "0")) > MAX_BODY:
            return None
    except ValueError:
        pass
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _Guard:
    """Checks Host, token and (for POST) the header token and Origin before any route runs;
    adds the security headers to every response."""

    def __init__(self, app, authorised, hosts: set[str]) -> None:
        self.app, self.authorised, self.hosts = app, authorised, hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._check(request)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                if request.url.path.startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _check(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if host not in self.hosts:
            return _error(421, f"this studio does not answer to host {host!r}",
                          "open the URL the studio printed")
        path = request.url.path
        if path == "/" and request.method == "GET":
            return None  # the page itself checks the token (it may arrive in the query)
        if (path.startswith("/static/") or path == "/favicon.ico") and request.method == "GET":
            return None  # the page's own script and style: nothing of the project
        if not self.authorised(request):
            return _refused()
        if request.method == "POST":
            header = request.headers.get(HEADER, "")
            origin = request.headers.get("origin")
            if not header or not self.authorised(_HeaderOnly(header)):
                return _error(403, "a change needs the studio's token in its request header")
            if origin is not None and origin.split("://", 1)[-1] not in self.hosts:
                return _error(403, f"refused a change requested by another site ({origin})")
        elif request.method not in ("GET", "HEAD"):
            return _error(405, f"{request.method} is not allowed here")
        return None


class _HeaderOnly:
    """A stand-in request that carries only the header token (so a cookie cannot stand in
    for it on a change)."""

    def __init__(self, value: str) -> None:
        self.cookies: dict = {}
        self.headers = {HEADER: value}


def _refused() -> Response:
    return PlainTextResponse("montage studio: this needs the token of the URL the studio printed "
                             "(open that URL again)", status_code=403)


def _error(status: int, message: str, hint: str = "") -> Response:
    return JSONResponse({"error": message, "hint": hint}, status_code=status)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def ranged(request: Request, path: Path, media_type: str) -> Response:
    """A file with HTTP range support (206 Partial Content), so the player can seek."""
    size = path.stat().st_size
    header = request.headers.get("range")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
    if not header:
        return FileResponse(path, media_type=media_type, headers=headers)
    m = _RANGE.match(header.strip())
    if m is None or (m.group(1) == "" and m.group(2) == ""):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if m.group(1) == "":  # the last N bytes
        start, end = max(0, size - int(m.group(2))), size - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
    fh.seek(start)

    def body():
        left = end - start + 1
        try:
            while left > 0:
                data = fh.read(min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield data
        finally:
            fh.close()

    headers.update({"Content-Range": f"bytes {start}-{end}/{size}",
                    "Content-Length": str(end - start + 1)})
    return StreamingResponse(body(), status_code=206, media_type=media_type, headers=headers)


def host_names(host: str, port: int) -> set[str]:
    """The Host header values a server bound to ``host``:``port`` answers to."""
    names = {f"{host}:{port}"}
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        names |= {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    if host in ("0.0.0.0", "::"):
        import socket

        names |= {f"{socket.gethostname()}:{port}"}
        try:
            names |= {f"{a[4][0]}:{port}" for a in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    return names
