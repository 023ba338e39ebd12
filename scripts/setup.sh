#!/usr/bin/env bash
# Install what trace_analyzer and its tests need on a fresh Debian machine:
# tshark (the independent dissector the tests compare against), DCMTK and
# tcpdump (real peers and the recorder of fresh exchanges), chromium (the
# headless browser that opens the HTML report in the tests), then the package
# itself with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=0
for tool in tshark getscu dcmqrscp tcpdump chromium; do
  command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tshark dcmtk tcpdump chromium >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
