"""POST /v1/og-image refuses hostile JSON with a 400 naming the body, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cards import make_settings, running
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio
API_KEY = "api-key-0123456789abcdef"


DEEP = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"title": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
    b'{"title": "x", "subtitle": ' + b"[" * 50_000,  # deep and unterminated
]


async def test_deeply_nested_json_is_a_400(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, api_keys=(API_KEY,)), FakeRenderer()) as (_, client):
        for payload in DEEP:
            response = await client.post(
                "/v1/og-image",
                content=payload,
                headers={"x-api-key": API_KEY, "content-type": "application/json"},
            )
            assert response.status_code == 400, (payload[:30], response.text[:200])
            assert response.json()["param"] == "body"
