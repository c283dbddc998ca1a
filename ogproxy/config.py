"""Settings, built once from CLI flags and ``OGPROXY_*`` variables and validated at start-up.

Each setting is declared once, as a field of ``Settings`` made by ``setting()``: its type
of value, default, bounds and help text. The environment variable (``OGPROXY_<NAME>``),
the CLI flag (``--<name>``), ``from_env``, ``to_env``, the click options and the README's
table are all derived from that declaration.

Adding a setting is one ``setting()`` field below plus its row in the README's table
(``tests/test_config.py`` checks that the two agree); commands that take it list its
name in ``cli_options.setting_options`` (``serve`` takes every setting).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import re
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .isolation import NETWORK_ISOLATION_CHOICES, NetworkIsolation
from .logs import LOG_FORMATS, LogFormat
from .origins import AllowList
from .resources import package_dir
from .sandbox import BROWSER_SANDBOX_CHOICES, DEFAULT_BROWSER_USER, BrowserSandbox
from .secretrules import check_secrets, split_secret

DEFAULT_HOST = "127.0.0.1"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
DEFAULT_PORT = 8000
DEFAULT_CACHE_DIR = Path(".ogproxy/cache")
DEFAULT_DEV_SECRET_FILE = Path(".ogproxy/dev-secret")
DEFAULT_CACHE_SIZE = 2**30  # 1 GiB on disk
DEFAULT_MEMORY_CACHE = 64 * 2**20  # 64 MiB of hot images kept in memory
DEFAULT_RENDER_TIMEOUT = 10.0  # seconds
DEFAULT_HEAD_TIMEOUT = 10.0  # seconds a client has for a request line and headers
DEFAULT_ASSET_TIMEOUT = 5.0  # seconds for one asset, all redirects and the whole body included
DEFAULT_QUEUE = 64  # renders waiting for a page before new misses get 503
# The built-in templates ship inside the package (wheel and sdist alike).
TEMPLATES_DIR = package_dir("builtin_templates")

# What a card whose asset fails gets (cards.py): served without it, briefly, or an error.
AssetFailure = Literal["degrade", "fail"]
ASSET_FAILURES: tuple[AssetFailure, ...] = ("degrade", "fail")

# Settings that hold secrets can instead name a file holding them (`OGPROXY_SECRET_FILE`),
# the convention of Docker and Kubernetes secrets, which are mounted as files.
SECRET_FILE_SETTINGS = ("OGPROXY_SECRET", "OGPROXY_API_KEYS", "OGPROXY_ADMIN_TOKEN")

_STORE_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/([\w.\-/]*?))?/?$", re.ASCII)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_size(text: str, setting: str) -> int:
    """``"1GiB"``, ``"500MB"``, ``"65536"`` -> bytes. Errors name ``setting``."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"{setting}: cannot read {text!r} as a size (e.g. 1GiB, 500MB)")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    base = unit[:1]
    scale = 2 ** (10 * " kmgt".index(base)) if "i" in unit else _UNITS[base]
    return int(number * scale)


Kind = Literal["text", "int", "float", "bool", "size", "list", "path", "folder", "choice"]


@dataclass(frozen=True)
class Declared:
    """How one setting is read from outside: its variable, flag, parser and help."""

    name: str
    kind: Kind
    help: str
    shown: str  # the default as the README's table says it (and --help, without backticks)
    env: str
    flag: str
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False

    def parse(self, raw: str) -> object:
        """The text of a variable or flag as this setting's value; errors name the variable."""
        text = raw.strip()
        if self.kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"{self.env}: {raw!r} is not one of 1, 0, true, false")
            return text.lower() in _TRUE
        if self.kind in ("int", "float"):
            try:
                return int(text) if self.kind == "int" else float(text)
            except ValueError:
                raise ConfigError(f"{self.env}: cannot read {raw!r} as {self.kind}") from None
        if self.kind == "size":
            return parse_size(text, self.env)
        if self.kind == "list":
            return split_secret(raw)  # the one rule for lists (secretrules.py)
        if self.kind in ("path", "folder"):
            return Path(text)
        if self.kind == "choice" and text not in self.choices:
            raise ConfigError(f"{self.env}: {raw!r} is not one of {', '.join(self.choices)}")
        return text

    def format(self, value: object) -> str | None:
        """The text ``parse`` turns back into ``value``; None for an unset setting."""
        if value is None:
            return None
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "list":
            return ",".join(value)  # type: ignore[arg-type]
        return str(value)

    def check(self, value: object) -> None:
        """Bounds and existence, with an error that names the variable."""
        if self.bounds is not None:
            low, high = self.bounds
            if not low <= value <= high:  # type: ignore[operator]
                within = f"between {_n(low)} and {_n(high)}" if high < float("inf") else ""
                raise ConfigError(f"{self.env}: {value} is not {within or f'at least {_n(low)}'}")
        if self.kind == "folder" and value is not None and not Path(str(value)).is_dir():
            raise ConfigError(f"{self.env}: {value} is not a directory")


def _n(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def setting(
    default: object = None,
    *,
    help: str,
    kind: Kind,
    shown: str | None = None,
    factory: Any = None,
    env: str | None = None,
    flag: str | None = None,
    bounds: tuple[float, float] | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """A field of ``Settings``: the one place a setting is declared."""
    meta = {
        "kind": kind,
        "help": help,
        "shown": shown if shown is not None else ("" if default is None else f"`{default}`"),
        "env": env,
        "flag": flag,
        "bounds": bounds,
        "choices": choices,
        "secret": secret,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, repr=not secret, metadata=meta)
    return dataclasses.field(default=default, repr=not secret, metadata=meta)


def cores() -> int:
    """The cores this process may run on (`taskset`, a container's cpuset), at least 1:
    what the defaults of pages and browsers follow."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# A Chromium process captures and composites serially: per card on the shipped template,
# ~14 ms of CPU in its browser process and ~18 ms in its GPU process, of ~55 ms in all
# (bench/README, "Shape by core count"). One browser thus keeps about three cores busy
# before its own processes are what every card waits for.
CORES_PER_BROWSER = 3
MAX_BROWSERS = 16


def browsers_for(cores: int) -> int:
    """Chromium processes for ``cores``: one per core up to two (two measured better than
    one on two cores), then one per CORES_PER_BROWSER cores."""
    return min(MAX_BROWSERS, max(min(2, cores), math.ceil(cores / CORES_PER_BROWSER)))


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
    secrets: tuple[str, ...] = setting(
        (),
        kind="list",
        env="OGPROXY_SECRET",
        flag="--secret",
        secret=True,
        shown="none: required unless `--dev`",
        help="Signing secret(s), comma-separated: the last signs, all verify.",
    )
    dev: bool = setting(
        False,
        kind="bool",
        shown="off; generates a secret once and keeps it in `OGPROXY_DEV_SECRET_FILE`",
        help="Development mode: generate and keep a local secret if none is given; a "
        "saved template, partial or font is the next request's card.",
    )
    dev_secret_file: Path = setting(
        DEFAULT_DEV_SECRET_FILE, kind="path", help="Where --dev keeps its generated secret."
    )
    host: str = setting(DEFAULT_HOST, kind="text", help="Interface to listen on.")
    port: int = setting(DEFAULT_PORT, kind="int", bounds=(1, 65535), help="Port to listen on.")
    cache_dir: Path = setting(
        DEFAULT_CACHE_DIR,
        kind="path",
        help="Directory of the persistent render cache (render reuses what serve rendered).",
    )
    cache_size: int = setting(
        DEFAULT_CACHE_SIZE,
        kind="size",
        shown="`1GiB`",
        bounds=(2**20, float("inf")),
        help="Disk cache size limit (e.g. 1GiB, 500MB); at least 1MiB.",
    )
    memory_cache: int = setting(
        DEFAULT_MEMORY_CACHE, kind="size", shown="`64MiB`", help="Hot images kept in memory."
    )
    chromium: str | None = setting(
        kind="text",
        shown="Playwright's browser, else `chromium-headless-shell`, else `chromium`",
        help="Chromium binary (default: Playwright's, else the system's).",
    )
    templates_dir: Path | None = setting(
        kind="folder",
        shown="none: the built-in `templates/` only",
        help="Your templates, searched before the built-in ones.",
    )
    fonts_dir: Path | None = setting(
        kind="folder",
        shown="none",
        help="Folder of extra fonts (woff2, woff, ttf, otf) usable by family name.",
    )
    browsers: int = setting(
        kind="int",
        factory=lambda: browsers_for(cores()),
        bounds=(1, MAX_BROWSERS),
        shown="one per core up to two, then one per three cores (`--workers`: of its share)",
        help="Chromium processes the pages are spread over.",
    )
    pages: int = setting(
        kind="int",
        factory=lambda: 2 * cores(),
        bounds=(1, 64),
        shown="two per core this process may use (`taskset`, a container's cpuset)",
        help="Concurrent renders (browser pages).",
    )
    queue: int = setting(
        DEFAULT_QUEUE,
        kind="int",
        bounds=(0, 100_000),
        shown="`64` renders waiting; beyond, 503 + `Retry-After`",
        help="Renders that may wait for a page; beyond it new misses get 503 + Retry-After.",
    )
    png_palette: bool = setting(
        False,
        kind="bool",
        shown="off: lossless PNGs unless a URL says `palette=1`",
        help="Default to 256-colour PNGs (URLs can still choose with palette=0/1).",
    )
    render_timeout: float = setting(
        DEFAULT_RENDER_TIMEOUT,
        kind="float",
        bounds=(0.5, 120),
        shown="`10` seconds",
        help="Seconds before a render is cut off.",
    )
    asset_origins: tuple[str, ...] = setting(
        (),
        kind="list",
        shown="none: only `data:` images and fonts (see *Images and fonts in cards*)",
        help="Comma-separated origins (https://host, https://*.host, google-fonts) a card's "
        "images, stylesheets and fonts may be fetched from.",
    )
    asset_timeout: float = setting(
        DEFAULT_ASSET_TIMEOUT,
        kind="float",
        bounds=(0.1, 60),
        shown="`5` seconds per asset (all of a card's: 8 s or 80% of the render timeout)",
        help="Seconds one image, stylesheet or font may take, redirects and body included.",
    )
    asset_failure: AssetFailure = setting(
        "degrade",
        kind="choice",
        choices=(*ASSET_FAILURES, "render"),
        shown="`degrade`: a card whose image, stylesheet or font fails is served without it "
        "for 60 s and never cached; `fail`: 422/502/504 (the old `render` is read as "
        "`degrade`)",
        help="What an image, stylesheet or font that cannot be loaded does: degrade serves "
        "the card without it (200, X-Cache: DEGRADED, max-age 60, not cached, tried again "
        "on the next request); fail answers 422/502/504 (not cached).",
    )
    api_keys: tuple[str, ...] = setting(
        (),
        kind="list",
        secret=True,
        shown="none: `POST /v1/og-image` off",
        help="Comma-separated keys for POST /v1/og-image (x-api-key); unset disables it.",
    )
    admin_token: str | None = setting(
        kind="text",
        secret=True,
        shown="none: the playground only in `--dev`",
        help="Turns on the playground at / in production (open it as /?token=...).",
    )
    public_url: str | None = setting(
        kind="text",
        shown="the bound address: what the playground signs for",
        help="The image endpoint as your pages see it, e.g. https://og.example.com/og.png.",
    )
    workers: int = setting(
        1,
        kind="int",
        bounds=(1, 64),
        shown="`1`; more processes share the port and the cache dir",
        help="Worker processes sharing the port and the cache dir, each with its own browser.",
    )
    access_log: bool = setting(
        True,
        kind="bool",
        shown="on",
        help="One JSON line per request on stderr (never the query string).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", kind="choice", choices=("debug", "info", "warning", "error"), help="Log level."
    )
    log_format: LogFormat = setting(
        "json",
        kind="choice",
        choices=LOG_FORMATS,
        shown="`json`; or `text`",
        help="Every log line as JSON (one object a line) or as plain text.",
    )
    head_timeout: float = setting(
        DEFAULT_HEAD_TIMEOUT,
        kind="float",
        bounds=(0.5, 300),
        shown="`10` seconds",
        help="Seconds a client has to send a request's line and headers; then the connection "
        "is closed (slow-header clients).",
    )
    trusted_proxies: str = setting(
        "127.0.0.1,::1",
        kind="text",
        shown="`127.0.0.1,::1`: a proxy on this host (Caddy); `none` trusts no one",
        help="Comma-separated addresses/networks whose X-Forwarded-For names the client "
        "(for the access log); 'none' trusts no one.",
    )
    network_isolation: NetworkIsolation = setting(
        "auto",
        kind="choice",
        choices=NETWORK_ISOLATION_CHOICES,
        shown="`auto`: Chromium in an empty network namespace where possible, else `flags`; "
        "`namespace` requires one",
        help="How Chromium is kept off the network: an empty network namespace (namespace), "
        "proxy and WebRTC flags only (flags), or namespace where available (auto).",
    )
    browser_sandbox: BrowserSandbox = setting(
        "auto",
        kind="choice",
        choices=BROWSER_SANDBOX_CHOICES,
        shown="`auto`: Chromium as `OGPROXY_BROWSER_USER` when ogproxy runs as root, and in its "
        "own sandbox where user namespaces allow; `on` requires what `auto` tries; `off`: neither",
        help="Chromium as a user of its own when ogproxy runs as root, and in its own sandbox "
        "(user namespaces): where the machine allows (auto), required (on), or neither (off).",
    )
    browser_user: str = setting(
        DEFAULT_BROWSER_USER,
        kind="text",
        shown="`nobody`: the user Chromium runs as when ogproxy runs as root (better: a user of "
        "its own, not in ogproxy's group)",
        help="The user Chromium runs as when ogproxy runs as root (a name or uid; not root).",
    )
    trusted_templates: bool = setting(
        False,
        kind="bool",
        shown="off: your templates render in a browser context of their own per card",
        help="Render your templates in the shared page pool like the built-in ones (faster); "
        "only for templates that never put caller input into markup or script.",
    )
    unsafe_dev: bool = setting(
        False,
        kind="bool",
        shown="off: `--dev` refuses a real secret and non-loopback addresses",
        help="Allow --dev with a real OGPROXY_SECRET or on a non-loopback address.",
    )
    store: str | None = setting(
        kind="text",
        shown="none: memory and disk only; `s3://bucket/prefix` adds the fleet's shared tier",
        help="Object-store cache tier shared by the fleet, s3://bucket/prefix "
        "(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION for the rest).",
    )

    def __post_init__(self) -> None:
        if not self.secrets and not self.dev:
            raise ConfigError(
                "OGPROXY_SECRET is missing: set it (several, comma-separated, to rotate keys) "
                "or run with --dev for a local secret"
            )
        if self.secrets:
            check_secrets(self.secrets)
        for declared in declarations():
            declared.check(getattr(self, declared.name))
        AllowList(self.asset_origins)  # raises a ConfigError naming the setting
        # The old name, which the variable and flag still accept: it rendered without the
        # asset and kept that card for a year; what it asked for is now `degrade`.
        if str(self.asset_failure) == "render":
            object.__setattr__(self, "asset_failure", "degrade")
        if self.dev and not self.unsafe_dev:
            _check_dev(self)
        _check_proxies(self.trusted_proxies)
        if self.browser_user.strip() in ("root", "0"):
            raise ConfigError(
                "OGPROXY_BROWSER_USER: Chromium must not run as root; name another user"
            )
        if self.store is not None:
            parse_store_url(self.store)  # raises a ConfigError naming OGPROXY_STORE

    @property
    def template_dirs(self) -> tuple[Path, ...]:
        return template_dirs(self.templates_dir)

    @property
    def image_base(self) -> str:
        """The image endpoint that signed URLs point at: the public URL, else the bound one."""
        return endpoint_url(self.public_url, self.host, self.port)

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """All secrets that verify, the signing one last; a dev secret if none was given."""
        if self.secrets:
            return self.secrets
        return (dev_secret(self.dev_secret_file),)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``OGPROXY_*`` variables; explicit ``overrides`` win over them."""
        env = read_secret_files(os.environ if environ is None else environ)
        values = {d.name: d.parse(env[d.env]) for d in declarations() if env.get(d.env)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """``OGPROXY_*`` variables that ``from_env`` turns back into these settings.

        The secret is the one that verifies: with ``--dev`` the generated one, so that
        every worker process started from these variables uses the same.
        """
        values = {d.env: d.format(getattr(self, d.name)) for d in declarations()}
        values["OGPROXY_SECRET"] = ",".join(self.signing_secrets)
        return {name: text for name, text in values.items() if text is not None}


@functools.cache
def declarations() -> tuple[Declared, ...]:
    """Every setting, in declaration order, from the fields of ``Settings``."""
    return tuple(
        Declared(
            name=f.name,
            env=f.metadata["env"] or f"OGPROXY_{f.name.upper()}",
            flag=f.metadata["flag"] or "--" + f.name.replace("_", "-"),
            **{k: v for k, v in f.metadata.items() if k not in ("env", "flag")},
        )
        for f in dataclasses.fields(Settings)
    )


def _check_proxies(value: str) -> None:
    """Checked here, so that a typo is an error naming the setting, not a uvicorn crash."""
    for item in (i.strip() for i in value.split(",") if i.strip()):
        if item not in ("*", "none"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(
                    f"OGPROXY_TRUSTED_PROXIES: {item!r} is not an IP address or network"
                ) from None


def _check_dev(settings: Settings) -> None:
    """The playground in dev mode signs anything for anyone who reaches it."""
    if settings.secrets:
        raise ConfigError(
            "--dev signs anything for anyone from the playground, so it does not run "
            "with a real OGPROXY_SECRET: unset it (dev mode keeps a local secret), "
            "or add --unsafe-dev (OGPROXY_UNSAFE_DEV=1) if you really mean it"
        )
    if settings.host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"--dev listens on loopback only, not {settings.host}: the playground would "
            "sign anything for anyone who can reach it; add --unsafe-dev "
            "(OGPROXY_UNSAFE_DEV=1) if you really mean it"
        )


def endpoint_url(public_url: str | None, host: str, port: int) -> str:
    """What ``serve`` signs for (the playground, the dev banner) and ``sign`` signs for:
    ``OGPROXY_PUBLIC_URL``, else the address the server listens on."""
    if public_url:
        return public_url
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{bracketed}:{port}/og.png"


def template_dirs(templates_dir: Path | None) -> tuple[Path, ...]:
    """Where templates are looked up, first match wins: the user's, then the built-in ones."""
    return (templates_dir, TEMPLATES_DIR) if templates_dir else (TEMPLATES_DIR,)


def read_secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with each ``OGPROXY_X_FILE`` replaced by ``OGPROXY_X``, read from the file.

    Several values (rotated secrets, API keys) go one per line or comma-separated. Both
    ``OGPROXY_X`` and ``OGPROXY_X_FILE`` set, or a file that cannot be read, is an error.
    """
    env = dict(environ)
    for name in SECRET_FILE_SETTINGS:
        path = env.pop(f"{name}_FILE", "")
        if not path:
            continue
        if env.get(name):
            raise ConfigError(f"{name} and {name}_FILE are both set: use one")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{name}_FILE: cannot read {path}: {reason}") from None
        # One value per line or comma-separated: the one rule for lists (secretrules.py).
        env[name] = ",".join(split_secret(text.replace("\n", ",")))
    return env


def kept_dev_secret(path: Path) -> str | None:
    """The dev secret kept in ``path``, None if there is none yet.

    A file that is there is used only if nobody else can read it and its secret passes
    the same rule as ``OGPROXY_SECRET``.
    """
    try:
        mode = path.stat().st_mode
        existing = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not existing:
        return None
    setting = f"dev secret file {path}"
    if mode & 0o077:
        raise ConfigError(
            f"{setting}: readable by group or others (mode {mode & 0o777:o}); "
            "`chmod 600` it, or delete it to have a new secret made"
        )
    if "," in existing:
        raise ConfigError(f"{setting}: holds a list; keep one secret in it")
    check_secrets((existing,), setting)
    return existing


def dev_secret(path: Path) -> str:
    """A random secret generated once and kept in ``path``, for local development."""
    existing = kept_dev_secret(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = _secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret
