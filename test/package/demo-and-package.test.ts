import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { adminClient } from '../support/helpers.js';

const run = promisify(execFile);

test('the npm start demo runs both pools under load and cleans up after itself', async (t) => {
  const { stdout } = await run('npx', ['tsx', 'examples/demo.ts'], {
    env: { ...process.env, DEMO_SECONDS: '2', METRICS_PORT: '0', ADMIN_PORT: '0' },
    timeout: 180_000,
  });
  const screens = stdout.trim().split('db-pool-otel demo:');
  const last = screens[screens.length - 1]!;
  t.regex(last, /^primary\s+\d+\/\d+\/\d+/m);
  t.regex(last, /^analytics\s+\d+\/\d+\/\d+/m);
  const qps = Number(/^primary\s+\S+\s+\d+\s+\S+\s+(\d+)/m.exec(last)?.[1]);
  t.true(qps > 0, last);
  t.regex(last, /slowest queries on analytics[^\n]*\n\s+\d+ ms {2}SELECT pg_sleep\(\$1\)/);
  t.regex(last, /22012:\d+/, 'the failing workload shows up by SQLSTATE');
  t.regex(last, /Prometheus metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/);
  t.regex(last, /DB_POOL_ADMIN_URL=http:\/\/127\.0\.0\.1:\d+ DB_POOL_ADMIN_TOKEN=[0-9a-f]{48}/);
  const admin = await adminClient(t);
  const { rows } = await admin.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'demo\\_%'");
  t.deepEqual(rows, [], 'the demo schema is dropped on exit');
});

test('the package builds and is importable with import and require, with declarations', async (t) => {
  await run('node', ['scripts/build.mjs'], { timeout: 120_000 });
  const cjs = await run('node', ['-e', 'const m = require("db-pool-otel"); console.log(typeof m.DatabasePool, m.CHANNELS.query, typeof m.describeQuery)']);
  t.is(cjs.stdout.trim(), 'function db-pool:query function');
  const esm = await run('node', [
    '--input-type=module',
    '-e',
    'import { DatabasePool, InvalidConfigError } from "db-pool-otel"; console.log(typeof DatabasePool, new InvalidConfigError([]).code)',
  ]);
  t.is(esm.stdout.trim(), 'function INVALID_CONFIG');
  const { stdout } = await run('node', [
    '-e',
    'const p = require("./package.json"); const fs = require("fs"); for (const c of ["import", "require"]) console.log(fs.existsSync(p.exports["."][c].types))',
  ]);
  t.is(stdout.trim(), 'true\ntrue');
  const help = await run('node', ['bin/db-pool.js', '--help']);
  t.regex(help.stdout, /Usage: db-pool/);
  // `npx -p db-pool-otel db-pool` outside the app, and a bin named after the package for `npx db-pool-otel`.
  const bins = (JSON.parse(await (await import('node:fs/promises')).readFile('package.json', 'utf8')) as { bin: Record<string, string> }).bin;
  t.deepEqual(Object.keys(bins).sort(), ['db-pool', 'db-pool-otel']);
  for (const file of Object.values(bins)) t.regex((await run('node', [file, '--help'])).stdout, /Usage: db-pool/);
});

test('importing the package loads no YAML parser, mailer or OpenTelemetry SDK; each loads when its feature is used', async (t) => {
  await run('node', ['scripts/build.mjs'], { timeout: 120_000 });
  const script = `
    const heavy = () => Object.keys(require.cache).filter((k) => /node_modules\\/(yaml|nodemailer|@opentelemetry\\/(sdk-metrics|exporter-prometheus|resources))\\//.test(k)).map((k) => k.split('node_modules/')[1].split('/').slice(0, k.includes('@opentelemetry') ? 2 : 1).join('/'));
    const { loadConfigFile } = require('db-pool-otel');
    const { startPrometheusExporter } = require('db-pool-otel/instrumentation');
    const before = [...new Set(heavy())];
    const fs = require('fs'), os = require('os'), path = require('path');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lazy-')), 'pools.yaml');
    fs.writeFileSync(file, 'pools:\\n  p:\\n    connection:\\n      host: h\\n');
    (async () => {
      await loadConfigFile(file);
      const prom = await startPrometheusExporter({ port: 0 });
      await prom.shutdown();
      console.log(JSON.stringify({ before, after: [...new Set(heavy())].sort() }));
    })();`;
  const { stdout } = await run('node', ['-e', script]);
  const { before, after } = JSON.parse(stdout) as { before: string[]; after: string[] };
  t.deepEqual(before, []);
  t.deepEqual(after, ['@opentelemetry/exporter-prometheus', '@opentelemetry/resources', '@opentelemetry/sdk-metrics', 'yaml']);
});
