"""Serve a folder of static pages (a review site, a runs dashboard) on the loopback interface.

Only 127.0.0.1 is bound (nothing is reachable from another machine), only files under the
folder are served (``http.server``'s own path handling), and nothing opens a browser.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def make_server(folder: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``folder`` on 127.0.0.1:``port`` (0: a free port), not started."""
    handler = functools.partial(_QuietHandler, directory=str(Path(folder).resolve()))
    return http.server.ThreadingHTTPServer((HOST, port), handler)


def url_of(server: http.server.ThreadingHTTPServer) -> str:
    return f"http://{HOST}:{server.server_address[1]}/"


@contextmanager
def serve_folder(folder: Path, port: int = 0) -> Iterator[str]:
    """Serve ``folder`` in a background thread for the ``with`` block; yields its URL."""
    server = make_server(folder, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()


def serve_forever(folder: Path, port: int = 0, *, page: str = "index.html", echo=print) -> None:
    """Serve ``folder`` until interrupted (Ctrl-C), after printing the page's URL with ``echo``."""
    server = make_server(folder, port)
    echo(f"serving {folder} at {url_of(server)}{page} (127.0.0.1 only; Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
