#!/usr/bin/env bash
# System libraries the tests need beyond pip: libb64 for perf_analyzer (tritonclient 2.51 wheel).
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libb64.so.0d'; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d >/dev/null
else
  echo "note: libb64-0d is missing; perf_analyzer tests will be skipped (sudo apt-get install libb64-0d)" >&2
fi
