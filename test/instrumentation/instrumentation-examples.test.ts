import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { freePort } from '../support/server.js';
import { eventually } from '../support/helpers.js';

const run = promisify(execFile);

test('examples/otel-nodesdk.ts: NodeSDK prints our spans and serves our series', async (t) => {
  const port = await freePort();
  const { stdout } = await run('npx', ['tsx', 'examples/otel-nodesdk.ts'], {
    env: { ...process.env, METRICS_PORT: String(port) },
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  t.regex(stdout, /name: 'acquire main'/);
  t.regex(stdout, /name: 'SELECT'/);
  t.true(stdout.includes("'db.query.text': 'SELECT $1::int AS id, ? AS status'"));
  t.false(stdout.includes("'paid'"), 'the literal stays out of the spans');
  t.regex(stdout, /^db_client_operation_duration_count\{[^}]*db_client_connection_pool_name="main"[^}]*db_operation_name="SELECT"[^}]*\} 6$/m);
  t.regex(stdout, /^db_client_connection_max\{db_client_connection_pool_name="main",[^}]*\} 4$/m);
});

test('examples/otel-prometheus.ts: startPrometheusExporter serves a running workload', async (t) => {
  const child = spawn('npx', ['tsx', 'examples/otel-prometheus.ts'], {
    env: { ...process.env, METRICS_PORT: '0', EXAMPLE_SECONDS: '3' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Listened for from the start: a quick exit must not be missed.
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const m = /^scrape (\S+)$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    exited.then(() => reject(new Error(`exited before printing its URL: ${out}`)), reject);
  });
  const series = [
    /^db_client_operation_duration_count\{[^}]*db_client_connection_pool_name="web"[^}]*error_type="42P01"/m,
    /^db_pool_slow_queries_total\{db_client_connection_pool_name="reports",/m,
    /^db_client_connection_max\{db_client_connection_pool_name="reports",[^}]*\} 2$/m,
  ];
  // The workload's series appear as it runs: scrape until all have, while the example still serves.
  let text = '';
  await eventually(async () => {
    if (child.exitCode !== null) return true;
    text = await fetch(url).then(
      (r) => r.text(),
      () => text,
    );
    return series.every((re) => re.test(text));
  }, 30_000);
  for (const re of series) t.regex(text, re);
  const [code] = await exited;
  t.is(code, 0);
  t.regex(out, /stopped/);
});
