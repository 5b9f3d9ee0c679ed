/**
 * Faults that need a server this process controls (test/support/own-server.ts): a real
 * restart under load, an authentication failure (the role's password changed under the pool, then
 * restored), and the server at max_connections. The own server checks passwords (scram-sha-256)
 * whatever DATABASE_URL points at, so the authentication case always runs for real.
 */
import { inspect } from 'node:util';
import pg from 'pg';
import { DatabasePool } from '../../../src/index.js';
import type { OwnServer } from '../own-server.js';
import { LoadDriver } from '../load-driver.js';
import { Checks, errorCode, eventually, formatCodes, isTyped, sampleMessage, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { accountLeaks, adminClient, appName, serverConnections, statusWhen } from '../server.js';
import { runFault, type FaultPlan, type FaultSize } from './faults.js';

/** Settings the own server is started with: few connections, so max_connections is reachable. */
export const OWN_SERVER_SETTINGS = { max_connections: '24', superuser_reserved_connections: '0' };

/** The server stopped (fast shutdown: clients get 57P01) under load and started again. */
export function restartPlan(server: OwnServer): FaultPlan {
  return {
    name: 'server restart under load',
    direct: server.url,
    pool: { max: 5, acquireTimeoutMs: 2_000 },
    sql: 'SELECT pg_sleep(0.005)',
    allowed: ['57P01', '57P03', 'CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ACQUIRE_TIMEOUT', 'ECONNRESET', 'EPIPE', 'ECONNREFUSED'],
    async inject() {
      await server.stop();
    },
    felt: (env) => env.load.waitFailed(env.db.getPoolConfig('main').max, 10_000),
    async heal(env) {
      await server.start();
      const upAt = Date.now();
      await env.admin.end().catch(() => {});
      env.admin = await adminClient(server.url);
      return upAt;
    },
  };
}

/** The role's password changed while the pool runs (its connections terminated), then restored. */
export async function authPlan(server: OwnServer): Promise<FaultPlan> {
  const role = `rel_auth_${process.pid}`;
  const good = `good-${Math.random().toString(36).slice(2)}-pw`;
  const rotated = `rotated-${Math.random().toString(36).slice(2)}-pw`;
  const su = await adminClient(server.url);
  await su.query(`DROP ROLE IF EXISTS ${role}`);
  await su.query(`CREATE ROLE ${role} LOGIN PASSWORD '${good}'`);
  await su.end();
  const u = new URL(server.url);
  u.username = role;
  u.password = good;
  const causes = new Map<string, number>();
  return {
    name: 'authentication failure',
    direct: u.toString(),
    adminUrl: server.url,
    pool: { max: 5, acquireTimeoutMs: 2_000 },
    sql: 'SELECT 1',
    allowed: ['57P01', 'CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ACQUIRE_TIMEOUT', 'ECONNRESET', 'EPIPE'],
    async inject(env) {
      await env.admin.query(`ALTER ROLE ${role} PASSWORD '${rotated}'`);
      await env.admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [env.app]);
    },
    felt: (env) =>
      eventually(() => {
        for (const code of ['CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ACQUIRE_TIMEOUT']) {
          const e = env.load.ledger.samples.get(code) as { cause?: unknown } | undefined;
          if (e) causes.set(code, Number(errorCode(e.cause) === '28P01'));
        }
        return [...causes.values()].some((v) => v === 1);
      }, 15_000),
    async heal(env) {
      await env.admin.query(`ALTER ROLE ${role} PASSWORD '${good}'`);
    },
    extra(env, checks) {
      const l = env.load.ledger;
      // Under a busy CPU the callers may only see ACQUIRE_TIMEOUT: that carries the cause too.
      const sample = l.samples.get('CONNECTION_FAILED') ?? l.samples.get('CIRCUIT_OPEN') ?? l.samples.get('ACQUIRE_TIMEOUT');
      checks.add(
        'the rejection carries the cause 28P01 (password authentication failed)',
        errorCode((sample as { cause?: unknown } | undefined)?.cause) === '28P01',
        sample instanceof Error ? sample.message : String(sample),
      );
      const seen = [
        ...[...l.samples.values()].map((e) => inspect(e, { depth: 6 }) + String((e as Error).stack) + String((e as Error).cause)),
        JSON.stringify(env.db.getPoolStatus('main')),
        JSON.stringify(env.db.getPoolConfig('main')),
        JSON.stringify(env.db.getDetailedMetrics('main')),
        inspect(env.db, { depth: 8 }),
        JSON.stringify(env.db),
      ].join('\n');
      checks.add('neither password appears in any error, status, config or metrics dump', !seen.includes(good) && !seen.includes(rotated), '');
    },
  };
}

/**
 * The server at max_connections: every free slot taken by other clients before the pool starts, so
 * its connects fail with 53300; two slots freed (it serves with what it gets), then all (it grows
 * to its max). Hogs are held for seconds only.
 */
export async function maxConnectionsScenario(ctx: ScenarioContext, server: OwnServer, size: FaultSize): Promise<ScenarioResult> {
  const started = performance.now();
  const app = appName('maxconn');
  const admin = await adminClient(server.url);
  const checks = new Checks();
  const figures: Record<string, string | number> = {};
  const hogs: pg.Client[] = [];
  let refusal: unknown;
  // Take every free slot.
  for (let i = 0; i < 200 && refusal === undefined; i++) {
    const c = new pg.Client({ connectionString: server.url, application_name: `${app}-hog` });
    c.on('error', () => {});
    try {
      await c.connect();
      hogs.push(c);
    } catch (err) {
      refusal = err;
    }
  }
  figures['slots taken by other clients'] = hogs.length;
  checks.add('the server refused one more connection with 53300', errorCode(refusal) === '53300', refusal instanceof Error ? refusal.message : String(refusal));
  const max = 5;
  const acquireTimeoutMs = 2_000;
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: server.url }, max, min: 0, acquireTimeoutMs, queryTimeoutMs: 2_000, applicationName: app } },
    recovery: { baseDelayMs: 100, circuitResetMs: 200 },
    logger: null,
  });
  const deadline = acquireTimeoutMs + 2_000 + 2_500;
  const load = new LoadDriver(() => db.query('main', 'SELECT pg_sleep(0.005)'), size.workers, deadline).start();
  let recoverMs: number | undefined;
  let peakWhileShort = 0;
  try {
    checks.add('calls fail while the server is full', await load.waitFailed(size.workers, 10_000), formatCodes(load.ledger.rejected));
    // Two slots free up.
    const freedAt = Date.now();
    for (const c of hogs.splice(0, 2)) await c.end();
    const servedShort = await load.waitServed(size.servedAfter, 20_000);
    recoverMs = load.recoveredAfter(freedAt);
    peakWhileShort = await serverConnections(admin, app);
    checks.add('serves with the two connections it could get', servedShort && peakWhileShort <= 2, `${peakWhileShort} server connections with 2 slots free`);
    // Everyone else leaves.
    await Promise.all(hogs.splice(0).map((c) => c.end()));
    const grew = await eventually(async () => (await serverConnections(admin, app)) === max, 10_000);
    checks.add(
      `grows to its max (${max}) once the server has room`,
      grew && (await load.waitServed(size.servedAfter, 20_000)),
      `total ${db.getPoolStatus('main').total}`,
    );
  } finally {
    await Promise.all(hogs.map((c) => c.end().catch(() => {})));
    await load.stop();
  }
  const l = load.ledger;
  const settled = await statusWhen(db, 'main', (s) => s.circuit === 'closed' && s.waiting === 0, deadline);
  const leaks = await accountLeaks(db, 'main', app, admin);
  await admin.end();
  const untyped = Object.keys(l.rejected).filter((c) => !isTyped(c));
  checks.add('every error typed', untyped.length === 0, untyped.join('; '));
  const unexpected = l.unexpected(['CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ACQUIRE_TIMEOUT']);
  checks.add(
    'errors only CONNECTION_FAILED / CIRCUIT_OPEN / ACQUIRE_TIMEOUT',
    unexpected.length === 0,
    unexpected.map((c) => `${c}: ${sampleMessage(l, c)}`).join('; ') || formatCodes(l.rejected),
  );
  const causes = [...l.samples.values()].map((e) => errorCode((e as { cause?: unknown }).cause));
  checks.add(
    'their cause is 53300 (too many connections)',
    causes.every((c) => c === '53300'),
    causes.join(', '),
  );
  checks.add('no call outlived its timeouts', l.hung === 0, `slowest ${Math.round(l.slowestMs)} ms, bound ${deadline} ms`);
  checks.add(
    "server-side connections returned to the pool's own, and to none after close",
    leaks.matched && leaks.leakedAfterClose === 0,
    `server ${leaks.serverCount}, pool ${leaks.poolTotal}, after close ${leaks.leakedAfterClose}`,
  );
  checks.add('circuit closed and nobody left waiting at the end', settled.reached, `circuit ${settled.status.circuit}, waiting ${settled.status.waiting}`);
  figures['slowest call (ms)'] = Math.round(l.slowestMs);
  return {
    name: 'server at max_connections',
    ...l.summary(),
    leaked: leaks.leakedWhileOpen + leaks.leakedAfterClose,
    recoverMs,
    figures,
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

export { runFault };
