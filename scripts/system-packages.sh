#!/usr/bin/env bash
# Debian packages some tests use: pgbouncer (transaction-mode test), prometheus with promtool and
# prometheus-alertmanager (rule and live dashboard tests). Run before `npm test` (as `pretest`) and by
# .ci/run. Installs what is missing when it can (root with apt-get); otherwise says what to install.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/usr/bin"
need=()
command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "npm test uses the Debian packages: ${need[*]} (sudo apt-get install ${need[*]}); the tests that need them are skipped without (in CI, CI=true, they fail)." >&2
  exit 0
fi
echo "installing Debian packages for the tests: ${need[*]}" >&2
# Keep the packages from starting services on a machine without systemd.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
