/**
 * The `npm start` demo: two pools from examples/pools.yaml under a mixed workload (fast, slow and
 * failing queries, transactions), with a one-screen table of each pool refreshed every second.
 * Stops on Ctrl-C (or after DEMO_SECONDS), closing the pools and dropping its schema.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DatabasePool, type DbPoolError } from '../src/index.js';
import { startPrometheusExporter } from '../instrumentations/index.js';

const configFile = fileURLToPath(new URL('./pools.yaml', import.meta.url));
const db = new DatabasePool({ configFile });
const schema = `demo_${process.pid}`;
const seconds = Number(process.env.DEMO_SECONDS ?? 0);

interface Tally {
  ok: number;
  failed: number;
  byCode: Map<string, number>;
}
const tallies = new Map<string, Tally>();
let running = true;

const prometheus = await startPrometheusExporter({ port: Number(process.env.METRICS_PORT ?? 9464), serviceName: 'db-pool-otel-demo' });
// The admin endpoint the `db-pool` CLI talks to; the token is printed so the CLI can be tried.
const adminToken = process.env.DB_POOL_ADMIN_TOKEN ?? randomBytes(24).toString('hex');
const admin = await db.startAdminServer({ port: Number(process.env.ADMIN_PORT ?? 9000), token: adminToken, logger: null });

async function main(): Promise<void> {
  await db.createPoolFromConfig('primary');
  await db.createPoolFromConfig('analytics');
  for (const id of db.listPools()) tallies.set(id, { ok: 0, failed: 0, byCode: new Map() });

  await db.query('primary', `CREATE SCHEMA ${schema}`);
  await db.query('primary', `CREATE TABLE ${schema}.accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))`);
  await db.query('primary', `INSERT INTO ${schema}.accounts SELECT g, 1000 FROM generate_series(1, 100) g`);

  const workers = [
    ...Array.from({ length: 6 }, () => loop('primary', fastRead)),
    ...Array.from({ length: 2 }, () => loop('primary', transfer)),
    loop('primary', failing),
    ...Array.from({ length: 4 }, () => loop('analytics', slowReport)),
  ];
  const screen = setInterval(draw, 1_000);
  const stop = () => {
    running = false;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (seconds > 0) setTimeout(stop, seconds * 1_000).unref();
  await Promise.all(workers);
  clearInterval(screen);
  draw();
}

async function loop(poolId: string, work: (poolId: string) => Promise<unknown>): Promise<void> {
  const tally = tallies.get(poolId)!;
  while (running) {
    try {
      await work(poolId);
      tally.ok++;
    } catch (err) {
      tally.failed++;
      const code = String((err as DbPoolError).code ?? 'error');
      tally.byCode.set(code, (tally.byCode.get(code) ?? 0) + 1);
    }
    await pause(5 + Math.random() * 20);
  }
}

const pick = () => 1 + Math.floor(Math.random() * 100);

function fastRead(poolId: string) {
  return db.query(poolId, `SELECT balance FROM ${schema}.accounts WHERE id = $1`, [pick()]);
}

function transfer(poolId: string) {
  // Some transfers overdraw and roll back (CHECK violation, SQLSTATE 23514).
  return db.transaction(poolId, async (tx) => {
    const amount = Math.floor(Math.random() * 400);
    await tx.query(`UPDATE ${schema}.accounts SET balance = balance - $1 WHERE id = $2`, [amount, pick()]);
    await tx.query(`UPDATE ${schema}.accounts SET balance = balance + $1 WHERE id = $2`, [amount, pick()]);
  });
}

function failing(poolId: string) {
  return db.query(poolId, 'SELECT 1 / $1::int', [0]);
}

function slowReport(poolId: string) {
  // Four workers on three connections, each holding one for up to 1.2 s: callers queue.
  return db.query(poolId, 'SELECT pg_sleep($1), count(*) FROM pg_class', [0.2 + Math.random()]);
}

const started = Date.now();
function draw(): void {
  const rows = db.listPools().map((id) => {
    const m = db.getMetrics(id);
    const t = tallies.get(id)!;
    const codes = [...t.byCode].map(([c, n]) => `${c}:${n}`).join(' ');
    return [
      id,
      `${m.totalConnections}/${m.activeConnections}/${m.idleConnections}`,
      m.waitingQueueLength,
      `${Math.round(m.connectionUtilization * 100)}%`,
      m.queriesPerSecond.toFixed(0),
      m.latencyP50.toFixed(1),
      m.latencyP99.toFixed(1),
      m.acquireLatencyP99.toFixed(1),
      `${(m.errorRate * 100).toFixed(1)}%`,
      m.slowQueriesCount,
      m.leakedConnections,
      t.ok,
      t.failed,
      codes,
    ];
  });
  const head = ['pool', 'conns t/a/i', 'waiting', 'util', 'qps', 'p50 ms', 'p99 ms', 'acq p99', 'errors', 'slow', 'leaks', 'ok', 'failed', 'failures by code'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells: unknown[]) => cells.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
  const out = [
    `db-pool-otel demo: ${Math.round((Date.now() - started) / 1000)} s  (Ctrl-C to stop)   Prometheus metrics: ${prometheus.url}`,
    `CLI: export DB_POOL_ADMIN_URL=${admin.url} DB_POOL_ADMIN_TOKEN=${adminToken}; npx db-pool health`,
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
  ].join('\n');
  const slow = db.getSlowQueries('analytics', { limit: 3 });
  const slowLines = slow.map((q) => `  ${q.durationMs.toFixed(0).padStart(6)} ms  ${q.text}`);
  const text = `${out}\nslowest queries on analytics (literals removed):\n${slowLines.join('\n')}\n`;
  process.stdout.write(process.stdout.isTTY ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

try {
  await main();
} finally {
  await db.query('primary', `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await db.close();
  await prometheus.shutdown();
}
