#!/usr/bin/env bash
# The ops guide's recovery operations — restart a pool, clean one up, export its metrics — on top of
# the `db-pool` CLI, which drives the running app's admin endpoint (db.startAdminServer()).
#
#   export DB_POOL_ADMIN_URL=http://127.0.0.1:9000 DB_POOL_ADMIN_TOKEN=...   # the app's admin endpoint
#
#   source examples/recovery_operations.sh          # then call the functions:
#   restart_pool primary
#   cleanup_pool primary
#   export_metrics primary                          # -> metrics_YYYYmmdd_HHMMSS.json
#
#   examples/recovery_operations.sh export_metrics primary before_restart.json   # or run one directly
#
# DB_POOL says how to run the CLI: default `db-pool` (installed with the package: npx db-pool, or
# node_modules/.bin on PATH); from a source checkout: DB_POOL="node --import tsx src/cli/bin.ts".
# Each function returns the CLI's exit code: 0 ok, 1 failed, 2 usage error, 3 endpoint unreachable
# or token refused.

: "${DB_POOL:=db-pool}"

_db_pool() {
  # shellcheck disable=SC2086  # DB_POOL may be a command with arguments
  $DB_POOL "$@"
}

# Replaces every connection of the pool: waiting callers move to the new connections, running
# queries finish on the old ones first.
restart_pool() {
  local pool=${1:?usage: restart_pool POOL}
  echo "Restarting pool: $pool"
  _db_pool restart "$pool"
}

# Closes idle connections (the pool refills to min), takes back loans held past the leak
# threshold, and clears transient error state.
cleanup_pool() {
  local pool=${1:?usage: cleanup_pool POOL}
  echo "Cleaning up pool: $pool"
  _db_pool cleanup "$pool"
}

# Writes getDetailedMetrics() of the pool to FILE (default metrics_YYYYmmdd_HHMMSS.json).
export_metrics() {
  local pool=${1:?usage: export_metrics POOL [FILE]}
  local file=${2:-metrics_$(date +%Y%m%d_%H%M%S).json}
  _db_pool metrics "$pool" --out "$file" >/dev/null || return
  echo "Metrics exported to: $file"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    restart_pool | cleanup_pool | export_metrics) "$@" ;;
    *)
      echo "usage: $0 {restart_pool|cleanup_pool|export_metrics} POOL [FILE]" >&2
      exit 2
      ;;
  esac
fi
