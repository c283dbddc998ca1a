"""One log format for every logger in the server: JSON lines (default) or plain text.

Each line has a UTC timestamp, a level and the logger's name; uvicorn's and the
libraries' messages go through the same handler, so a log shipper reads one format.
Libraries that narrate their routine work at INFO (httpx: every request; pyvips: every
thread pool it finishes) are held at WARNING unless the level is debug.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from json.encoder import encode_basestring
from typing import Literal

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")
# Libraries whose INFO lines are noise to an operator.
QUIET_LIBRARIES = ("httpx", "httpcore", "pyvips", "asyncio", "multipart")

# The request being served, so that any line logged while serving it can name it.
REQUEST_ID: ContextVar[str | None] = ContextVar("ogproxy_request_id", default=None)

_second = -1
_prefix = ""


def timestamp(now: float | None = None) -> str:
    """``2026-11-25T13:30:00.123Z``; the part up to the second is formatted once a second
    (the access log writes one per request on the hit path)."""
    global _second, _prefix
    now = time.time() if now is None else now
    second = int(now)
    if second != _second:
        _second, _prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_prefix}.{int((now - second) * 1000):03d}Z"


# C0 and C1 controls (newline, carriage return, escape sequences) and the Unicode line
# and paragraph separators: each can start what looks like another log line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` with its control characters written as Python escapes (``\\n``)."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)


# What JSON leaves raw with ``ensure_ascii=False`` but many readers take for a line break
# or a terminal control: DEL, the C1 controls (U+0085 is a line break, U+009B starts an
# escape sequence), and the Unicode line and paragraph separators.
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    if _RAW_IN_JSON.search(text) is None:
        return text
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_line(fields: dict[str, object]) -> str:
    """One JSON object on one line."""
    return _one_line(json.dumps(fields, ensure_ascii=False))


def json_string(text: str | None) -> str:
    """``text`` as a JSON string (``null`` for None) that keeps its line one line: what
    ``json_line`` writes for it, at a tenth of the cost of a ``json.dumps`` per line (the
    access log builds its line from these on the hit path)."""
    return "null" if text is None else _one_line(encode_basestring(text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := REQUEST_ID.get():
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json_line(line)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # One event, one line: a message cannot forge another line, and a traceback's
        # lines are marked as the continuation of the event above them.
        text = f"{timestamp(record.created)} {record.levelname} {record.name}: "
        text += escape(record.getMessage())
        if request_id := REQUEST_ID.get():
            text += f" request_id={request_id}"
        if record.exc_info:
            lines = self.formatException(record.exc_info).splitlines()
            text += "".join("\n  | " + escape(line) for line in lines)
        return text


def configure(level: str, fmt: LogFormat = "json") -> None:
    """Send every logger's records to stderr in ``fmt``, at ``level`` and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    # uvicorn's own handlers would print its lines in its format: it logs through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class Sampler:
    """Lets one event a period through and counts the others.

    A flood of refused requests (anyone can send bad signatures) then costs a log line a
    second instead of one each: a formatted, flushed line per 403 was most of its cost.
    """

    def __init__(self, period: float = 1.0) -> None:
        self.period = period
        self.skipped = 0
        self._next = 0.0

    def take(self) -> int | None:
        """How many were skipped since the last one let through, or None to skip this one."""
        now = time.monotonic()
        if now < self._next:
            self.skipped += 1
            return None
        self._next = now + self.period
        skipped, self.skipped = self.skipped, 0
        return skipped
