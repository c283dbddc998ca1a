"""Range headers no parser can choke on, on the full request path and on the fast path."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from ogproxy.delivery import UNSATISFIABLE, _byte_range
from tests.support.cards import signed

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
