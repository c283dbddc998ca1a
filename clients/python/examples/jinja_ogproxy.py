"""A Jinja filter for ogproxy cards (Flask: ``app.jinja_env``; FastAPI/Starlette:
``Jinja2Templates(...).env``)::

    install(env, "https://og.example.com/og.png", os.environ["OGPROXY_SECRET"])

    {{ post.title | og_image(subtitle=post.author, template="gradient") }}
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import Environment
from markupsafe import Markup
from ogproxy_sign import meta_tags, sign_url


def og_image_filter(endpoint: str, secret: str) -> Callable[..., Markup]:
    def og_image(title: str, alt: str | None = None, **params: object) -> Markup:
        url = sign_url(endpoint, secret, {"title": title, **params})
        # meta_tags escapes every value it writes, so the result is safe as a whole.
        return Markup(meta_tags(url, alt=alt or title))

    return og_image


def install(env: Environment, endpoint: str, secret: str) -> None:
    env.filters["og_image"] = og_image_filter(endpoint, secret)
