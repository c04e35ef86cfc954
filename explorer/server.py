"""Serving the explorer with uvicorn: blocking for `chromatic explore`, in a thread for tests and benchmarks.

The socket is bound here rather than by uvicorn so that port 0 (any free port)
works and the caller learns the real address before the first request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from featurestore.errors import ChromaticError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServerError(ChromaticError):
    """The explorer could not start (port taken, bad host)."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
                          "(0 takes any free one) or --host") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


def serve(app, host: str, port: int, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C); `on_ready(url)` is called once the socket is bound."""
    sock = bind(host, port)
    if on_ready:
        on_ready(url_of(sock))
    _server(app).run(sockets=[sock])


@contextmanager
def running_server(app, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` in a background thread; yields its base URL and always stops it on exit."""
    sock = bind(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServerError(f"the explorer did not start within {start_timeout_s:.0f} s")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
