"""Range headers no parser can choke on, on the full request path and on the fast path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ogproxy.delivery import UNSATISFIABLE, _byte_range
from tests.conftest import Fake
from tests.support.cards import make_settings, running, signed
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio

HUGE = "9" * 5000  # past Python's 4300-digit int() limit


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"bytes=0-{HUGE}", (0, 99)),  # a last byte past the end means "to the end"
        (f"bytes={HUGE}-", UNSATISFIABLE),
        (f"bytes={HUGE}-{HUGE}", UNSATISFIABLE),
        (f"bytes=-{HUGE}", (0, 99)),  # a suffix longer than the image is all of it
        (f"bytes=0{'0' * 5000}-9", (0, 9)),  # leading zeros are still a small number
        ("bytes=5-2", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
    ],
)
def test_byte_range_of_any_length(header: str, expected: tuple[int, int]) -> None:
    assert _byte_range(header.encode(), 100) == expected


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("header", [f"bytes=0-{HUGE}", f"bytes={HUGE}-", f"bytes=-{HUGE}"])
async def test_huge_range_numbers_are_not_a_500(
    client: httpx.AsyncClient, fast: bool, header: str
) -> None:
    url = signed({"title": f"Huge ranges {fast} {header[6:9]}"})
    if fast:
        full = (await client.get(url)).content  # now a known query: the fast path answers
    response = await client.get(url, headers={"Range": header})
    assert response.status_code in (206, 416), response.text[:200]
    if fast:
        assert response.status_code == 416 or response.content == full


def test_the_http_layer_loads_no_template_engine_nor_image_library() -> None:
    # The repeat-hit fast path and the delivery headers are HTTP facts: importing them
    # must not drag in jinja2 (templates) or libvips (the encoder).
    code = (
        "import sys, ogproxy.delivery, ogproxy.hits; "
        "print(sorted({'jinja2', 'pyvips'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


async def test_if_none_match_star_matches_only_a_card_that_exists(
    fake: Fake, tmp_path: Path
) -> None:
    """``*`` matches any current representation: there is none before the first render,
    and none ever for a card that fails. Then the request is answered as if it had none."""
    star = {"If-None-Match": "*"}
    url = signed({"title": "Never rendered"})
    first = await fake.client.get(url, headers=star)
    assert first.status_code == 200 and first.content, first.text
    assert fake.renderer.renders == 1
    again = await fake.client.get(url, headers=star)  # stored now: the fast path answers
    assert again.status_code == 304 and again.headers["etag"] == first.headers["etag"]
    # Another process on the same cache (nothing in its memory): the full path looks.
    other = FakeRenderer()
    async with running(make_settings(tmp_path / "cache"), other) as (_, client):
        assert (await client.get(url, headers=star)).status_code == 304
    assert fake.renderer.renders == 1 and other.renders == 0

    fake.renderer.faults.append("invalid")
    failing = await fake.client.get(signed({"title": "Fails"}), headers=star)
    assert failing.status_code == 422 and "immutable" not in failing.headers["cache-control"]
