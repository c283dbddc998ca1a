"""A Django template tag library for ogproxy cards (copy it into an app's templatetags/).

Settings: ``OGPROXY_URL`` (the image endpoint, e.g. ``https://og.example.com/og.png``) and
``OGPROXY_SECRET``. In a template::

    {% load django_ogproxy %}
    {% og_image title=post.title subtitle=post.author template="gradient" %}
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.safestring import SafeString, mark_safe
from ogproxy_sign import meta_tags, sign_url

register = template.Library()


@register.simple_tag
def og_image(alt: str | None = None, **params: object) -> SafeString:
    """The og:image and twitter:image meta tags for a card with ``params``."""
    url = sign_url(settings.OGPROXY_URL, settings.OGPROXY_SECRET, params)
    # meta_tags escapes every value it writes, so the result is safe as a whole.
    return mark_safe(meta_tags(url, alt=alt or str(params.get("title") or "")))
