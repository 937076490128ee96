#!/usr/bin/env bash
# Install the Debian packages the tests need, when they are missing:
# PostgreSQL, Redis, Chromium, and bubblewrap (the local provider's sandbox
# for user code; its tests fail without it). Debian's own python3 runs the
# sandbox probe as an unprivileged user. Needs root (as on CI) or
# passwordless sudo.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/bwrap ] || missing+=(bubblewrap)
[ -x /usr/bin/python3 ] || missing+=(python3)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing ${missing[*]} from Debian's packages..."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
# The packaged PostgreSQL cluster is not used; the tests start their own.
$SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
