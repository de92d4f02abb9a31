#!/usr/bin/env bash
# System packages the tests need beyond pip, installed with apt when run as root (`make test`, .ci/run):
# - libb64-0d: perf_analyzer (tritoncls's tritonclient 2.51 wheel) links it;
# - prometheus: Debian's package brings promtool, which checks and unit-tests the Prometheus rules that
#   `tritoncls deploy --target k8s` renders (tests/test_deploy_observability.py).
# The prometheus package would start its daemon on install; a policy-rc.d that refuses every start is in
# place while apt runs (the one there before, if any, is put back), and none is started.
set -euo pipefail

missing=()
ldconfig -p 2>/dev/null | grep -q 'libb64.so.0d' || missing+=(libb64-0d)
command -v promtool >/dev/null || missing+=(prometheus)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  for package in "${missing[@]}"; do
    case "$package" in
      libb64-0d) echo "note: libb64-0d is missing; perf_analyzer tests will be skipped (sudo apt-get install libb64-0d)" >&2 ;;
      prometheus) echo "note: promtool is missing; the Prometheus rule tests will be skipped" \
                       "(sudo apt-get install --no-install-recommends prometheus)" >&2 ;;
    esac
  done
  exit 0
fi

# Refuse every service start while apt runs (invoke-rc.d reads /usr/sbin/policy-rc.d; exit 101 = "not allowed").
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
  saved="$(mktemp)"
  cp -p "$policy" "$saved"
fi
restore_policy() {
  if [ -n "$saved" ]; then
    cp -p "$saved" "$policy" && rm -f "$saved"
  else
    rm -f "$policy"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# scripts/system_deps.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
chmod 755 "$policy"

apt-get update -qq >/dev/null
# --no-install-recommends: prometheus recommends prometheus-node-exporter, another daemon the tests do not need.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  promtool --version >/dev/null
  if command -v pgrep >/dev/null && pgrep -x prometheus >/dev/null; then
    echo "warning: a prometheus daemon is running (pid $(pgrep -x prometheus | tr '\n' ' ')); the tests need only" \
         "promtool. Stop it if this install started it." >&2
  fi
fi
