"""ogproxy's CLI on the fake renderer: `python -m tests.support.fakecli serve ...`.

The real commands (options, logging, uvicorn and its bounded protocol, `render`, `warm`)
with no browser, for tests whose subject is the process rather than the pixels. Run it
with the repository's root on the path (``FAKE_CLI``, ``REPO`` in ``tests.support.servers``).
"""

from __future__ import annotations

from ogproxy import cli, service
from tests.support.fake import FakeRenderer

if __name__ == "__main__":
    # What Service.build falls back to (and where it would look for a browser).
    service.chromium = lambda settings: FakeRenderer()
    cli.main()
