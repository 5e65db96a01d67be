"""studio (floor 5): edit the script beside the film in the browser, and see it recut.

Owns: one page (``static/``), one Starlette app (``server``: the token, origin and path checks),
one :class:`Studio` per project (``session``: the Recutter with models and index kept loaded,
and a worker for recuts), the current cut as the page shows it (``page``), the film it plays (``playback``), thumbnails and previews made by ffmpeg on demand (``media``).
:func:`serve` runs it on uvicorn. May import: ``montage.pipeline`` and every room below it.
A new panel of the page: its markup in ``static/``, its data from a route in ``server``.
"""
from __future__ import annotations

import errno
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass

from planner.errors import ProjectError

from montage.studio.server import create_app, host_names
from montage.studio.session import Studio

__all__ = ["Running", "Studio", "create_app", "listen", "serve", "start_in_thread"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket; a port in use is one clear error (not a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ProjectError(f"port {port} on {host} is in use (another studio, or another program)",
                               f"pass --port {port + 1}, or --port 0 for any free port") from None
        raise ProjectError(f"cannot listen on {host}:{port} ({exc.strerror})",
                           "check --host (127.0.0.1 is the default)") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def serve(studio: Studio, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          quiet: bool = False) -> None:
    """Serve ``studio`` until Ctrl-C; prints the URL with its token."""
    import uvicorn

    sock = listen(host, port)
    port = sock.getsockname()[1]
    token = token or secrets.token_urlsafe(24)
    shown = f"[{host}]" if ":" in host else host
    if host not in LOOPBACK:
        print(f"WARNING: montage studio listens on {host}, not only on this computer: anyone who "
              "can reach it and has the token can edit this project and read its footage.",
              file=sys.stderr, flush=True)
    print(f"montage studio: http://{shown}:{port}/?token={token}   (Ctrl-C stops it)", flush=True)
    app = create_app(studio, token, host_names(host, port))
    config = uvicorn.Config(app, log_level="warning" if not quiet else "error", access_log=False,
                            lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        studio.close()


@dataclass
class Running:
    """A studio server running in a thread of this process (tests, benchmarks, notebooks)."""

    url: str
    thread: threading.Thread
    server: object

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(studio: Studio, token: str, *, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve ``studio`` from a daemon thread; returns once it answers (port 0: any free port)."""
    import uvicorn

    sock = listen(host, port)
    port = sock.getsockname()[1]
    app = create_app(studio, token, host_names(host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="montage-studio-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    return Running(f"http://{host}:{port}", thread, server)
