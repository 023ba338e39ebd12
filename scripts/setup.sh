#!/usr/bin/env bash
# Install what trace_analyzer and its tests need on a fresh Debian or Ubuntu machine:
# tshark (the independent dissector the tests compare against), DCMTK and tcpdump (real
# peers and the recorder of fresh exchanges), chromium (the headless browser that opens the
# HTML report in the tests), python3-venv, then the package itself with its test extras in
# a virtual environment, .venv/ beside this folder: a stock Debian 12 or Ubuntu 24.04 Python
# refuses pip installs into the system (PEP 668), so nothing is installed there.
# Safe to run again. Afterwards: .venv/bin/trace-analyzer, .venv/bin/python -m pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
need_apt=0
for tool in tshark getscu dcmqrscp tcpdump chromium; do
  [ -x "/usr/bin/$tool" ] || command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
# The venv module, with pip to bootstrap (Debian ships it in python3-venv).
"$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  packages="tshark dcmtk tcpdump chromium"
  "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1 || packages="$packages python3-venv"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $packages >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
