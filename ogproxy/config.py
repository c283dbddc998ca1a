"""Settings, built once from CLI flags and ``OGPROXY_*`` variables and validated at start-up."""

from __future__ import annotations

import os
import re
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_CACHE_DIR = Path(".ogproxy/cache")
DEFAULT_DEV_SECRET_FILE = Path(".ogproxy/dev-secret")
DEFAULT_CACHE_SIZE = 2**30  # 1 GiB on disk
DEFAULT_MEMORY_CACHE = 64 * 2**20  # 64 MiB of hot PNGs kept in memory
DEFAULT_RENDER_TIMEOUT = 10.0  # seconds
DEFAULT_QUEUE = 64  # renders waiting for a page before new misses get 503
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

_STORE_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/([\w.\-/]*?))?/?$", re.ASCII)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str, setting: str) -> int:
    """``"1GiB"``, ``"500MB"``, ``"65536"`` -> bytes. Errors name ``setting``."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"{setting}: cannot read {text!r} as a size (e.g. 1GiB, 500MB)")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    base = unit[:1]
    scale = 2 ** (10 * " kmgt".index(base)) if "i" in unit else _UNITS[base]
    return int(number * scale)


def parse_store_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``; errors name OGPROXY_STORE."""
    m = _STORE_URL.match(url.strip())
    prefix = (m.group(2) or "").strip("/") if m else ""
    segments = prefix.split("/") if prefix else []
    if not m or ".." in m.group(1) or any(s in ("", ".", "..") for s in segments):
        raise ConfigError(
            f"OGPROXY_STORE: {url!r} is not s3://bucket or s3://bucket/prefix "
            "(a bucket name is 3-63 lowercase letters, digits, dots and hyphens; "
            "a prefix is letters, digits, '.', '_', '-' and '/')"
        )
    return m.group(1), prefix


@dataclass(frozen=True)
class Settings:
    secrets: tuple[str, ...] = field(default=(), repr=False)
    dev: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    cache_dir: Path = DEFAULT_CACHE_DIR
    cache_size: int = DEFAULT_CACHE_SIZE
    memory_cache: int = DEFAULT_MEMORY_CACHE
    chromium: str | None = None
    templates_dir: Path | None = None  # the user's templates, over the built-in ones
    # Chromium encodes and rasterises serially per process: two processes use two cores.
    browsers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    pages: int = field(default_factory=lambda: 2 * max(1, os.cpu_count() or 1))
    png_palette: bool = False
    queue: int = DEFAULT_QUEUE
    asset_origins: tuple[str, ...] = ()  # where avatar/logo URLs may be fetched from
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # for POST /v1/og-image
    fonts_dir: Path | None = None
    admin_token: str | None = field(default=None, repr=False)  # turns the playground on
    public_url: str | None = None  # the image endpoint as pages see it (for the playground)
    render_timeout: float = DEFAULT_RENDER_TIMEOUT
    dev_secret_file: Path = DEFAULT_DEV_SECRET_FILE
    store: str | None = (
        None  # s3://bucket/prefix: the fleet's shared cache tier (AWS_* for the rest)
    )

    def __post_init__(self) -> None:
        if not self.secrets and not self.dev:
            raise ConfigError(
                "OGPROXY_SECRET is missing: set it (several, comma-separated, to rotate keys) "
                "or run with --dev for a local secret"
            )
        if any(len(s) < 16 for s in self.secrets):
            raise ConfigError("OGPROXY_SECRET: each secret must be at least 16 characters")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"OGPROXY_PORT: {self.port} is not a port number")
        if self.cache_size < 2**20:
            raise ConfigError("OGPROXY_CACHE_SIZE: must be at least 1MiB")
        if not 1 <= self.pages <= 64:
            raise ConfigError("OGPROXY_PAGES: must be between 1 and 64")
        if not 0 <= self.queue <= 100_000:
            raise ConfigError("OGPROXY_QUEUE: must be between 0 and 100000")
        if not 1 <= self.browsers <= 16:
            raise ConfigError("OGPROXY_BROWSERS: must be between 1 and 16")
        if not 0.5 <= self.render_timeout <= 120:
            raise ConfigError("OGPROXY_RENDER_TIMEOUT: must be between 0.5 and 120 seconds")
        if self.templates_dir is not None and not self.templates_dir.is_dir():
            raise ConfigError(f"OGPROXY_TEMPLATES_DIR: {self.templates_dir} is not a directory")
        if self.fonts_dir is not None and not self.fonts_dir.is_dir():
            raise ConfigError(f"OGPROXY_FONTS_DIR: {self.fonts_dir} is not a directory")
        if self.store is not None:
            parse_store_url(self.store)  # raises a ConfigError naming OGPROXY_STORE

    @property
    def template_dirs(self) -> tuple[Path, ...]:
        """Where templates are looked up, first match wins."""
        return (self.templates_dir, TEMPLATES_DIR) if self.templates_dir else (TEMPLATES_DIR,)

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """All secrets that verify, the signing one last; a dev secret if none was given."""
        if self.secrets:
            return self.secrets
        return (dev_secret(self.dev_secret_file),)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``OGPROXY_*`` variables; explicit ``overrides`` win over them."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if raw := env.get("OGPROXY_SECRET"):
            values["secrets"] = split_secrets(raw)
        for name in ("dev", "png_palette"):
            if raw := env.get(f"OGPROXY_{name.upper()}"):
                values[name] = raw.lower() in ("1", "true", "yes", "on")
        for name, conv in (
            ("host", str),
            ("port", int),
            ("chromium", str),
            ("pages", int),
            ("browsers", int),
            ("queue", int),
            ("render_timeout", float),
            ("admin_token", str),
            ("public_url", str),
            ("store", str),
        ):
            if raw := env.get(f"OGPROXY_{name.upper()}"):
                values[name] = _convert(conv, raw, f"OGPROXY_{name.upper()}")
        for name in ("asset_origins", "api_keys"):
            if raw := env.get(f"OGPROXY_{name.upper()}"):
                values[name] = split_secrets(raw)
        for name in ("cache_dir", "templates_dir", "dev_secret_file", "fonts_dir"):
            if raw := env.get(f"OGPROXY_{name.upper()}"):
                values[name] = Path(raw)
        for name in ("cache_size", "memory_cache"):
            if raw := env.get(f"OGPROXY_{name.upper()}"):
                values[name] = parse_size(raw, f"OGPROXY_{name.upper()}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """``OGPROXY_*`` variables that ``from_env`` turns back into these settings."""
        env = {
            "OGPROXY_SECRET": ",".join(self.signing_secrets),
            "OGPROXY_DEV": "1" if self.dev else "",
            "OGPROXY_PNG_PALETTE": "1" if self.png_palette else "",
        }
        for name in (
            "host",
            "port",
            "pages",
            "browsers",
            "queue",
            "render_timeout",
            "cache_dir",
            "dev_secret_file",
            "cache_size",
            "memory_cache",
        ):
            env[f"OGPROXY_{name.upper()}"] = str(getattr(self, name))
        if self.chromium:
            env["OGPROXY_CHROMIUM"] = self.chromium
        if self.fonts_dir:
            env["OGPROXY_FONTS_DIR"] = str(self.fonts_dir)
        if self.templates_dir:
            env["OGPROXY_TEMPLATES_DIR"] = str(self.templates_dir)
        if self.admin_token:
            env["OGPROXY_ADMIN_TOKEN"] = self.admin_token
        if self.public_url:
            env["OGPROXY_PUBLIC_URL"] = self.public_url
        if self.store:
            env["OGPROXY_STORE"] = self.store
        env["OGPROXY_ASSET_ORIGINS"] = ",".join(self.asset_origins)
        env["OGPROXY_API_KEYS"] = ",".join(self.api_keys)
        return env


def _convert(conv: type, raw: str, setting: str) -> object:
    try:
        return conv(raw)
    except ValueError:
        raise ConfigError(f"{setting}: cannot read {raw!r} as {conv.__name__}") from None


def split_secrets(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def dev_secret(path: Path) -> str:
    """A random secret generated once and kept in ``path``, for local development."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = _secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret
