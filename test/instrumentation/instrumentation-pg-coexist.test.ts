/**
 * Beside `@opentelemetry/instrumentation-pg` (which auto-instrumentations-node enables) in one
 * NodeSDK: our query and connect spans suppress the nested pg spans, which would repeat each
 * statement with its raw SQL; with `suppressDriverSpans: false` both are made. Run in a child
 * process, as an application loads them: the SDK first, then pg and the package (CommonJS build).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { databaseUrl } from '../support/helpers.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const APP = `
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { trace } = require('@opentelemetry/api');
const { InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg');
const { DbPoolInstrumentation } = require('./dist/cjs/instrumentations/index.js');
const exporter = new InMemorySpanExporter();
const sdk = new NodeSDK({
  autoDetectResources: false,
  spanProcessors: [new SimpleSpanProcessor(exporter)],
  instrumentations: [new PgInstrumentation(), new DbPoolInstrumentation({ suppressDriverSpans: process.env.SUPPRESS !== '0' })],
});
sdk.start();
const pg = require('pg');
const { DatabasePool } = require('./dist/cjs/src/index.js');
(async () => {
  const db = new DatabasePool({ pools: { main: { connection: { connectionString: process.env.DATABASE_URL }, min: 0 } }, logger: null });
  await trace.getTracer('app').startActiveSpan('GET /orders', async (span) => {
    await db.query('main', "SELECT 'hunter2-literal' AS s, $1::int AS n", [7]);
    // The pool's own statements too: the health probe and the server-budget read.
    await db.deepHealthCheck('main');
    span.end();
  });
  await db.close();
  const spans = exporter.getFinishedSpans().map((s) => ({
    name: s.name,
    scope: (s.instrumentationScope ?? s.instrumentationLibrary).name,
    text: JSON.stringify(s.attributes),
  }));
  console.log(JSON.stringify({ patched: Boolean(pg.Client.prototype.query.__wrapped), spans }));
  await sdk.shutdown();
})().catch((err) => { console.error(err); process.exit(1); });
`;

interface Result {
  patched: boolean;
  spans: { name: string; scope: string; text: string }[];
}

async function runApp(suppress: boolean): Promise<Result> {
  const { stdout } = await run('node', ['-e', APP], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl(), SUPPRESS: suppress ? '1' : '0' },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Result;
}

test.before(async () => {
  await run('node', ['scripts/build.mjs'], { cwd: ROOT, timeout: 180_000 });
});

test('beside instrumentation-pg, each statement has our span only: no nested pg span, no raw literal', async (t) => {
  const r = await runApp(true);
  t.true(r.patched, 'instrumentation-pg patched pg (else this test proves nothing)');
  const ours = r.spans.filter((s) => s.scope === 'db-pool-otel');
  t.true(
    ours.some((s) => s.name === 'SELECT'),
    JSON.stringify(r.spans.map((s) => s.name)),
  );
  t.deepEqual(
    r.spans.filter((s) => s.scope.includes('instrumentation-pg')).map((s) => s.name),
    [],
  );
  for (const s of r.spans) t.false(s.text.includes('hunter2'), `${s.scope} ${s.name}`);
});

test('with suppressDriverSpans: false both instrumentations make their spans', async (t) => {
  const r = await runApp(false);
  t.true(r.patched);
  t.true(r.spans.some((s) => s.scope === 'db-pool-otel' && s.name === 'SELECT'));
  t.true(
    r.spans.some((s) => s.scope.includes('instrumentation-pg')),
    JSON.stringify(r.spans.map((s) => `${s.scope}:${s.name}`)),
  );
});
