"""ogproxy_sign against the shared vectors (spec/vectors.json), and its two examples."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from ogproxy_sign import (
    LimitError,
    canonical_query,
    check_params,
    meta_tags,
    sign_url,
    signature,
    to_pairs,
)

HERE = Path(__file__).resolve().parent
FILE = json.loads((HERE.parent.parent.parent / "spec" / "vectors.json").read_text("utf-8"))
VECTORS: list[dict[str, Any]] = FILE["vectors"]
LIMITS: list[dict[str, Any]] = FILE["limits"]["cases"]
sys.path.insert(0, str(HERE.parent / "examples"))


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors(v: dict[str, Any]) -> None:
    pairs = to_pairs(v["params"])
    assert canonical_query(pairs) == v["canonical_query"]
    assert signature(v["secret"], v["path"], pairs) == v["sig"]
    url = sign_url("https://og.example.com" + v["path"], v["secret"], v["params"])
    assert url == f"https://og.example.com{v['path']}?{v['canonical_query']}&sig={v['sig']}"


def test_dict_and_pairs_sign_alike_and_none_is_left_out() -> None:
    v = VECTORS[0]
    as_dict = sign_url("https://og.example.com/og.png", v["secret"], dict(v["params"]))
    with_none = sign_url("https://og.example.com", v["secret"], [*v["params"], ("author", None)])
    assert as_dict == with_none
    assert as_dict.endswith("&sig=" + v["sig"])


def test_last_secret_signs() -> None:
    v = VECTORS[1]
    url = sign_url(
        "https://og.example.com/og.png", ["old-secret-0123456789", v["secret"]], v["params"]
    )
    assert url.endswith("&sig=" + v["sig"])


@pytest.mark.parametrize(
    ("base", "params"),
    [
        ("https://og.example.com/og.png?v=1", {"title": "x"}),
        ("https://og.example.com/og.png#x", {"title": "x"}),
        ("https://og.example.com/og.png", {"sig": "forged"}),
    ],
)
def test_misuse_is_refused(base: str, params: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        sign_url(base, "s3cret-s3cret-s3cret", params)
    with pytest.raises(ValueError):
        sign_url("https://og.example.com/og.png", "", {"title": "x"})


@pytest.mark.parametrize("case", LIMITS, ids=[c["name"] for c in LIMITS])
def test_the_servers_limits_checked_on_request(case: dict[str, Any]) -> None:
    params = [tuple(p) for p in case["params"]]
    base, secret = "https://og.example.com/og.png", "s3cret-s3cret-s3cret"
    assert sign_url(base, secret, params)  # unchecked unless asked: signs anything
    if case["refused"] is None:
        check_params(params)
        assert sign_url(base, secret, params, check=True) == sign_url(base, secret, params)
        return
    with pytest.raises(LimitError) as refused:
        check_params(params)
    assert refused.value.param == (None if case["refused"] == "query" else case["refused"])
    with pytest.raises(LimitError, match=str(refused.value)):
        sign_url(base, secret, params, check=True)


def test_meta_tags_read_the_size_from_the_url() -> None:
    square = sign_url(
        "https://og.example.com/og.png", "s3cret-s3cret-s3cret", {"width": 1080, "height": 1080}
    )
    assert '<meta property="og:image:width" content="1080">' in meta_tags(square)
    assert '<meta property="og:image:height" content="1080">' in meta_tags(square)
    retina = meta_tags("https://og.example.com/og.png?scale=2&width=600&sig=x")
    assert 'og:image:width" content="1200">' in retina and 'height" content="1260">' in retina
    assert 'og:image:width" content="800">' in meta_tags(square, width=800)  # given wins
    assert 'og:image:width" content="1200">' in meta_tags("https://x/og.png?width=wide&sig=x")


def test_meta_tags_escape_and_follow_the_endpoint() -> None:
    html = meta_tags('https://og.example.com/og.webp?title=a"><script>&sig=x', alt="<b>")
    assert "<script>" not in html and "<b>" not in html
    assert '<meta property="og:image:type" content="image/webp">' in html
    assert '<meta property="og:image:width" content="1200">' in html
    assert 'content="image/jpeg"' in meta_tags("https://og.example.com/og.jpg?sig=x")


def test_jinja_filter_example() -> None:
    jinja2 = pytest.importorskip("jinja2")
    from jinja_ogproxy import install

    env = jinja2.Environment(autoescape=True)
    v = VECTORS[1]
    install(env, "https://og.example.com/og.png", v["secret"])
    html = env.from_string("{{ title | og_image }}").render(title="Hello")
    assert f'content="https://og.example.com/og.png?title=Hello&amp;sig={v["sig"]}"' in html
    assert "&amp;amp;" not in html  # escaped once, not twice


def test_django_tag_example() -> None:
    pytest.importorskip("django")
    import django
    from django.conf import settings

    v = VECTORS[1]
    if not settings.configured:
        settings.configure(
            OGPROXY_URL="https://og.example.com/og.png",
            OGPROXY_SECRET=v["secret"],
            TEMPLATES=[
                {
                    "BACKEND": "django.template.backends.django.DjangoTemplates",
                    "OPTIONS": {"libraries": {"django_ogproxy": "django_ogproxy"}},
                }
            ],
        )
        django.setup()
    from django.template import engines

    template = engines["django"].from_string("{% load django_ogproxy %}{% og_image title=t %}")
    html = template.render({"t": "Hello"})
    assert f'content="https://og.example.com/og.png?title=Hello&amp;sig={v["sig"]}"' in html
    assert '<meta property="og:image:alt" content="Hello">' in html
