"""Files shipped inside the package (built-in templates, the playground page)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_dir(name: str) -> Path:
    """The folder ``ogproxy/<name>`` as a real path.

    The template scan globs a folder on disk for ``*.html`` (templates.py reads the files
    into a DictLoader). A wheel, an sdist and an editable install all put the package on
    disk; a zipped install (zipimport) is not supported, and this says so instead of
    failing later with a missing template.
    """
    resource = files("ogproxy").joinpath(name)
    if not isinstance(resource, Path) or not resource.is_dir():
        raise RuntimeError(f"ogproxy's package data {name}/ is not a folder on disk: {resource}")
    return resource
