"""A loopback "CDN" for tests: routes set per test, every request and connection counted."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    body: bytes = b""
    type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0  # seconds between bytes: a slow origin
    delay: float = 0.0  # seconds before the status line


class AssetHost:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Reply] = {}
        self.hits: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = outer.routes.get(self.path.split("?")[0]) or outer.routes.get(self.path)
                reply = reply or Reply(b"not found", "text/plain", 404)
                time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.type)
                if "Content-Length" not in reply.headers and not reply.trickle:
                    self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.trickle:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if not reply.trickle:
                        self.wfile.write(reply.body)
                        return
                    for i in range(len(reply.body)):
                        self.wfile.write(reply.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                outer.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up on a slow or huge body: expected here

        self.server = Server((host, 0), Handler)
        self.port = int(self.server.server_address[1])
        self.origin = f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path


@contextmanager
def asset_host(host: str = "127.0.0.1") -> Iterator[AssetHost]:
    server = AssetHost(host)
    # A short poll interval: shutdown() waits up to one of them, at every test's end.
    thread = threading.Thread(target=server.server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@functools.cache
def woff2_font(family: str) -> bytes:
    """A WOFF2 font renamed ``family``, so a test can tell it was used.

    Noto Serif's ASCII (fonts-noto-core, installed by setup.sh).
    """
    import io

    from fontTools import subset  # type: ignore[import-untyped]
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    font = TTFont("/usr/share/fonts/truetype/noto/NotoSerif-Regular.ttf")
    subsetter = subset.Subsetter()
    subsetter.populate(text="".join(chr(c) for c in range(32, 127)))
    subsetter.subset(font)
    for record in font["name"].names:
        if record.nameID in (1, 4, 6, 16):
            record.string = family.replace(" ", "") if record.nameID == 6 else family
    font.flavor = "woff2"
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()
