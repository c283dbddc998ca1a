#!/usr/bin/env bash
# Sets up everything ogproxy needs on a Debian/Ubuntu machine, idempotently:
#   .venv with the package (and its test extras), a Chromium for Playwright, the fonts.
# Usage: scripts/setup.sh [--venv | --test | --bench]
#   --venv sets up the virtualenv only (what `make check` needs: no browser, no fonts);
#   --test adds what the test suite runs (caddy, wrk); --bench adds Node and the Node peers.
# Playwright's own browser is used where it is installed or downloadable; otherwise
# Debian's chromium-headless-shell (or chromium) is installed with apt.
set -euo pipefail
cd "$(dirname "$0")/.."

want_venv_only=0
want_test=0
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --venv) want_venv_only=1 ;;
    --test) want_test=1 ;;
    --bench) want_test=1; want_bench=1 ;;
    *) echo "usage: $0 [--venv | --test | --bench]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.ogproxy-setup

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root for: $*  (run it yourself, then re-run make)"; return 1
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { say "no apt-get here: install $* yourself"; return 1; }
  if [ "$apt_updated" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing_debs() {
  local p out=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[@]:-}"
}

# 1. Virtualenv and package (re-installed when pyproject.toml changes). Debian and Ubuntu
#    ship venv/ensurepip in a separate package.
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_install python3-venv python3-pip
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
extras="dev"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ clients/python/pyproject.toml -nt "$STAMP" ]; then
  say "installing ogproxy (and its signer, clients/python) into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ./clients/python -e ".[$extras]"
  touch "$STAMP"
fi
[ "$want_venv_only" = 1 ] && exit 0

# 2. Fonts: Inter for text, Noto Color Emoji, Noto CJK, Noto (Arabic, Hebrew, ...) for
#    right-to-left and other scripts. Without them cards show tofu boxes.
debs=(fonts-inter fonts-noto-color-emoji fonts-noto-cjk fonts-noto-core fontconfig)

# 3. A Chromium: an explicit OGPROXY_CHROMIUM, else Playwright's own (installed or
#    downloadable), else Debian's headless shell.
have_browser() {
  [ -n "${OGPROXY_CHROMIUM:-}" ] && [ -x "$OGPROXY_CHROMIUM" ] && return 0
  "$VENV/bin/python" -m ogproxy.browser --check >/dev/null 2>&1
}
if ! have_browser; then
  say "no Chromium found: trying Playwright's own download"
  if timeout 180 "$VENV/bin/playwright" install --only-shell chromium >/tmp/ogproxy-pw-install.log 2>&1 && have_browser; then
    say "using Playwright's Chromium"
  else
    say "Playwright could not download its browser; using Debian's chromium-headless-shell"
    if apt-cache show chromium-headless-shell >/dev/null 2>&1 || { as_root apt-get update -qq && apt_updated=1; apt-cache show chromium-headless-shell >/dev/null 2>&1; }; then
      debs+=(chromium-headless-shell)
    else
      debs+=(chromium)
    fi
  fi
fi

if [ "$want_test" = 1 ]; then
  # node, go and php run the signers in clients/ against spec/vectors.json.
  debs+=(caddy wrk)
  command -v node >/dev/null 2>&1 || debs+=(nodejs)
  command -v go >/dev/null 2>&1 || debs+=(golang-go)
  command -v php >/dev/null 2>&1 || debs+=(php-cli)
fi
if [ "$want_bench" = 1 ]; then
  command -v npm >/dev/null 2>&1 || debs+=(nodejs npm)
fi

todo=$(missing_debs "${debs[@]}")
if [ -n "$todo" ]; then
  # shellcheck disable=SC2086
  apt_install $todo
fi

if ! have_browser; then
  say "still no Chromium: install chromium-headless-shell (apt) or set OGPROXY_CHROMIUM"
  exit 1
fi
if [ "$want_bench" = 1 ] && [ ! -d bench/peers/node_modules ]; then
  say "installing the Node peers into bench/peers/node_modules"
  npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error
fi
say "ready: $("$VENV/bin/python" -m ogproxy.browser --check)"
