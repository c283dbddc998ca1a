"""ogproxy: a self-hosted Open Graph image service."""

from __future__ import annotations

from .signing import sign_url, verify_url

__version__ = "0.1.0"
__all__ = ["__version__", "sign_url", "verify_url"]
