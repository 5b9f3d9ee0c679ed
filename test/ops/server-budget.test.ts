/**
 * The server's connection budget in one process (issue 18): what each pool reads of its server
 * (max_connections, superuser_reserved_connections, reserved_connections, the client backends) and
 * when, checked against the server's own answers; where it shows (getMetrics, getDetailedMetrics,
 * health, diagnosis, the admin endpoint and the CLI, the instrumentation's gauges); auto-tuning
 * bounded by it; and through PgBouncer, what is measured. Against DATABASE_URL, plus an embedded
 * PostgreSQL 18 of the test's own (reserved_connections, a small max_connections, real 53300s).
 *
 * Serial: this process's pools to one server are summed, so concurrently running tests would see
 * each other's pools.
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { DatabasePool, type PoolConfig, type ServerBudget } from '../../src/index.js';
import { liveServerBudgets } from '../../src/pool/server-budget.js';
import { run } from '../../src/cli/main.js';
import { DbPoolInstrumentation, startPrometheusExporter } from '../../instrumentations/index.js';
import { TOKEN, adminFor } from '../support/admin-helpers.js';
import { adminClient, databaseUrl, eventually, uniqueName } from '../support/helpers.js';
import { ordinaryRoleUrl, startOwnServer, type OwnServer } from '../support/own-server.js';
import { startPgBouncer } from '../support/pgbouncer.js';
import { findTool, requireTool, run as runTool, withTools } from '../support/prometheus-tools.js';

/** The server's own answers, from a plain client. */
async function serverTruth(client: pg.Client): Promise<{ max: number; superuserReserved: number; reserved: number | null }> {
  const { rows } = await client.query<{ max: string; su: string; reserved: string | null }>(
    "SELECT current_setting('max_connections') AS max, current_setting('superuser_reserved_connections') AS su, current_setting('reserved_connections', true) AS reserved",
  );
  const r = rows[0]!;
  return { max: Number(r.max), superuserReserved: Number(r.su), reserved: r.reserved === null ? null : Number(r.reserved) };
}

function db(
  t: { teardown(fn: () => unknown): void },
  pools: Record<string, Partial<PoolConfig>>,
  url = databaseUrl(),
  options: ConstructorParameters<typeof DatabasePool>[0] = {},
): DatabasePool {
  const full: Record<string, PoolConfig> = {};
  for (const [id, cfg] of Object.entries(pools)) full[id] = { connection: { connectionString: url }, ...cfg };
  const d = new DatabasePool({ logger: null, ...options, pools: full });
  t.teardown(() => d.close({ drainTimeoutMs: 2_000 }));
  return d;
}

const budgetOf = async (d: DatabasePool, poolId: string): Promise<ServerBudget> => {
  let b: ServerBudget | null = null;
  await eventually(() => (b = d.getMetrics(poolId).serverBudget) !== null, 10_000);
  if (b === null) throw new Error(`pool ${poolId} never read its server's budget`);
  return b;
};

let own: OwnServer | undefined;
/** The embedded server, started on first use: max_connections 20, 2 + 1 reserved: 17 usable. */
async function ownServer(): Promise<OwnServer> {
  own ??= await startOwnServer({ settings: { max_connections: '20', superuser_reserved_connections: '2', reserved_connections: '1' } });
  return own;
}
test.after.always(async () => {
  await own?.destroy();
});

/** A non-superuser role on the own server (superusers may take the reserved slots). */
const appRoleUrl = (server: OwnServer): Promise<string> => ordinaryRoleUrl(server, uniqueName('budget_app'));

test.serial(
  "a pool reads its server budget on its first connection: the server's own settings, usable slots, backends, and this process's claims",
  async (t) => {
    const admin = await adminClient(t);
    const truth = await serverTruth(admin);
    const d = db(t, { a: { max: 4, min: 1 }, b: { max: 3, min: 0 } });
    const a = await budgetOf(d, 'a');
    t.is(a.via, 'server');
    t.is(a.maxConnections, truth.max);
    t.is(a.superuserReservedConnections, truth.superuserReserved);
    t.is(a.reservedConnections, truth.reserved, 'reserved_connections: null where the server has no such setting (before 16)');
    t.is(a.usableConnections, truth.max - truth.superuserReserved - (truth.reserved ?? 0));
    t.true(a.backends !== null && a.backends >= 1 && a.backends <= truth.max, `backends ${a.backends}`);
    const u = new URL(databaseUrl());
    t.is(a.serverAddress, u.hostname);
    t.is(a.serverPort, Number(u.port || 5432));
    // Both pools count for this process, b before it has any connection; b reads nothing until its first one.
    t.deepEqual([...a.instance.poolIds].sort(), ['a', 'b']);
    t.is(a.instance.max, 7);
    t.is(d.getMetrics('b').serverBudget, null);
    t.false(a.overBudget);
    // The same in every face of the metrics.
    const detailed = d.getDetailedMetrics('a').toJSON() as { serverBudget: ServerBudget };
    t.is(detailed.serverBudget.maxConnections, truth.max);
    t.is((d.getMetrics('a').toJSON() as { serverBudget: ServerBudget }).serverBudget.usableConnections, a.usableConnections);
    await d.query('b', 'SELECT 1');
    const b = await budgetOf(d, 'b');
    t.is(b.maxConnections, truth.max);
  },
);

test.serial('the backends are read again when asked, at most every 5 s, on an idle connection: the pool opens no connection for it', async (t) => {
  // The own server: nobody else connects to it, so its count of backends is exact.
  const server = await ownServer();
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  t.teardown(() => admin.end().catch(() => {}));
  const d = db(t, { one: { max: 1, min: 1 } }, server.url);
  const first = await budgetOf(d, 'one');
  const attempts = d.getDetailedMetrics('one').totals.connectAttempts;
  // Three more clients on the server.
  const extra = await Promise.all(
    [0, 1, 2].map(async () => {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      return c;
    }),
  );
  t.teardown(() => Promise.all(extra.map((c) => c.end().catch(() => {}))));
  const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'");
  // Asked through getDetailedMetrics: read again once 5 s have passed since the last reading.
  let later: ServerBudget | null = null;
  const reread = await eventually(
    () => {
      later = d.getDetailedMetrics('one').serverBudget;
      return later !== null && later.backendsMeasuredAt !== first.backendsMeasuredAt;
    },
    15_000,
    100,
  );
  t.true(reread, 'read again');
  const l = later! as ServerBudget;
  t.true(Date.parse(l.backendsMeasuredAt!) - Date.parse(first.backendsMeasuredAt!) >= 5_000, `${first.backendsMeasuredAt} → ${l.backendsMeasuredAt}`);
  t.is(l.backends, rows[0]!.n, `backends ${first.backends} → ${l.backends}`);
  t.is(l.backends, first.backends! + 3, 'the three new clients');
  // The settings were not read again (no reconnect), and the pool opened nothing for it.
  t.is(l.learnedAt, first.learnedAt);
  t.is(d.getDetailedMetrics('one').totals.connectAttempts, attempts);
  t.is(d.getPoolStatus('one').total, 1);
});

test.serial('after a reconnect the settings are read again; PostgreSQL 16+ reserved_connections is counted', async (t) => {
  const server = await ownServer();
  t.true(server.major >= 16, `own server ${server.major}`);
  const url = await appRoleUrl(server);
  const d = db(t, { r: { max: 3, min: 1, acquireTimeoutMs: 3_000 } }, url, { recovery: { enabled: false } });
  const first = await budgetOf(d, 'r');
  t.is(first.maxConnections, 20);
  t.is(first.superuserReservedConnections, 2);
  t.is(first.reservedConnections, 1);
  t.is(first.usableConnections, 17);
  // A second connection of the same pool is not a reconnect.
  const [c1, c2] = await Promise.all([d.acquire('r'), d.acquire('r')]);
  c1.release();
  c2.release();
  t.is((await budgetOf(d, 'r')).learnedAt, first.learnedAt);
  // Every connection of the pool terminated: the next connect is a reconnect.
  const su = new pg.Client({ connectionString: server.url });
  await su.connect();
  t.teardown(() => su.end().catch(() => {}));
  const created = d.getDetailedMetrics('r').totals.connectionsCreated;
  await su.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [new URL(url).username]);
  await eventually(async () => {
    try {
      await d.query('r', 'SELECT 1');
      return true;
    } catch {
      return false;
    }
  }, 10_000);
  t.true(d.getDetailedMetrics('r').totals.connectionsCreated > created, 'the pool reconnected');
  t.true(await eventually(() => d.getMetrics('r').serverBudget!.learnedAt !== first.learnedAt, 10_000), 'read again after the reconnect');
  t.is(d.getMetrics('r').serverBudget!.usableConnections, 17);
});

test.serial("health and diagnosis warn when this process's pools may open more than the usable slots; auto-tuning stays within serverShare", async (t) => {
  // Sized from the server's usable slots U: big (U - 37) + other (50) + probe (1) = U + 14, over the budget;
  // serverShare lets this process hold big + 12, leaving other 11.
  const usable = (await budgetOf(db(t, { probe: { max: 1, min: 1 } }), 'probe')).usableConnections;
  t.true(usable >= 48, `the test needs at least 48 usable slots, the server has ${usable}`);
  const bigMax = usable - 37;
  const serverShare = (bigMax + 12.5) / usable;
  const d = db(t, { big: { max: bigMax, min: 1 }, other: { max: 50, min: 1 } }, databaseUrl(), {
    autoTune: { scaleUpUtilization: 0, scaleUpQps: 0, serverShare },
  });
  const b = await budgetOf(d, 'big');
  await budgetOf(d, 'other');
  t.is(b.usableConnections, usable);
  t.true(b.overBudget);
  const health = await d.healthCheck();
  t.is(health.status, 'healthy', 'every pool answers: the warning does not change the status');
  t.is(health.warnings.length, 1);
  t.like(health.warnings[0], { type: 'server_budget', instanceMax: usable + 14, usableConnections: usable });
  t.deepEqual([...health.warnings[0]!.poolIds].sort(), ['big', 'other', 'probe']);
  const deep = await d.deepHealthCheck('big');
  t.false(deep.checks.serverBudget.healthy);
  t.false(deep.overallHealthy);
  t.is(deep.checks.serverBudget.value, usable + 14);
  const diagnosis = await d.diagnosePerformanceIssues('other');
  const issue = diagnosis.issues.find((i) => i.type === 'server_budget');
  t.truthy(issue);
  t.is(issue?.severity, 'high');
  t.is(diagnosis.overallHealth, 'critical');

  // Auto-tuning: a busy pool would grow ×1.5 (10 → 15), but serverShare leaves it (big + 12) - big - 1 (probe) = 11.
  await d.updatePoolConfig('other', { max: 10 });
  const held = await d.acquire('other');
  await d.query('other', 'SELECT 1');
  const decision = await d.optimizePoolSize('other', { apply: false });
  held.release();
  t.like(decision.budget, { from: 'serverShare', limit: bigMax + 12, otherPoolsMax: bigMax + 1, ceiling: 11 });
  t.is(decision.after, 11, decision.reason);
  t.regex(decision.reason, /capped at 11 by serverShare/);
  // Applied, it stays there: the next decision does not grow it.
  await d.optimizePoolSize('other');
  t.is(d.getPoolConfig('other').max, 11);
  // Once the others leave room, it grows the usual ×1.5.
  await d.updatePoolConfig('big', { max: 5 });
  const held2 = await d.acquire('other');
  await d.query('other', 'SELECT 1');
  const roomy = await d.optimizePoolSize('other', { apply: false });
  held2.release();
  t.is(roomy.after, 17, roomy.reason);
  // And the warning is gone.
  t.deepEqual((await d.healthCheck()).warnings, []);
  t.true((await d.deepHealthCheck('big')).checks.serverBudget.healthy);
});

test.serial('an explicit serverBudget bounds auto-tuning; invalid budget options are refused', async (t) => {
  const d = db(t, { p: { max: 10, min: 1 }, q: { max: 5, min: 0 } }, databaseUrl(), { autoTune: { scaleUpUtilization: 0, scaleUpQps: 0, serverBudget: 12 } });
  await budgetOf(d, 'p');
  const held = await d.acquire('p');
  await d.query('p', 'SELECT 1');
  const decision = await d.optimizePoolSize('p', { apply: false });
  held.release();
  t.like(decision.budget, { from: 'serverBudget', limit: 12, otherPoolsMax: 5, ceiling: 7 });
  t.is(decision.after, 10, 'already past its budget: not grown (and not shrunk by it)');
  t.regex(decision.reason, /not grown/);
  const bad = db(t, { p2: { max: 2, min: 1 } }, databaseUrl(), { autoTune: { serverShare: 1.5 } });
  await t.throwsAsync(bad.optimizePoolSize('p2', { apply: false }), { code: 'INVALID_CONFIG', message: /autoTune\.serverShare/ } as never);
});

test.serial('after a 53300 (too many connections) auto-tuning does not grow the pool', async (t) => {
  const server = await ownServer();
  const url = await appRoleUrl(server);
  const d = db(t, { m: { max: 4, min: 1, acquireTimeoutMs: 3_000 } }, url, {
    autoTune: { scaleUpUtilization: 0, scaleUpQps: 0 },
    recovery: { enabled: false },
  });
  const b = await budgetOf(d, 'm');
  // Everyone else takes the remaining usable slots (as the same kind of role: reserved slots stay free).
  const hogs: pg.Client[] = [];
  t.teardown(() => Promise.all(hogs.map((c) => c.end().catch(() => {}))));
  for (let i = 0; i < 40; i++) {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    try {
      await c.connect();
      hogs.push(c);
    } catch (err) {
      t.is((err as { code?: string }).code, '53300');
      break;
    }
  }
  t.true(hogs.length > 0 && hogs.length < 40, `${hogs.length} other clients`);
  // Two callers at once: the second connect is refused with 53300, both are served by the one connection.
  const results = await Promise.all(
    [0, 1].map(() =>
      d.query('m', 'SELECT pg_sleep(0.2)').then(
        () => 'ok',
        (e: { code?: string }) => e.code,
      ),
    ),
  );
  t.deepEqual(results, ['ok', 'ok']);
  t.true(await eventually(() => (d.getMetrics('m').serverBudget?.tooManyConnections.count ?? 0) >= 1, 5_000), 'the 53300 is remembered');
  const held = await d.acquire('m');
  await d.query('m', 'SELECT 1').catch(() => {});
  const decision = await d.optimizePoolSize('m', { apply: false });
  held.release();
  t.is(decision.after, decision.before, decision.reason);
  t.regex(decision.reason, /53300/);
  t.is(b.usableConnections, 17);
});

withTools(test.serial, ['pgbouncer'])(
  "through PgBouncer: the budget is the server's behind it, marked via pooler, and not counted against the server nor exported",
  async (t) => {
    const bouncer = await startPgBouncer(databaseUrl(), 2);
    t.teardown(() => bouncer.stop());
    const admin = await adminClient(t);
    const truth = await serverTruth(admin);
    const d = db(t, { direct: { max: 3, min: 1 } });
    const p = db(t, { pgb: { max: 50, min: 1, transactionPooling: true } }, bouncer.url);
    const viaPooler = await budgetOf(p, 'pgb');
    t.is(viaPooler.via, 'pooler');
    t.is(viaPooler.maxConnections, truth.max, 'read through the pooler: the server behind it');
    t.false(viaPooler.overBudget);
    const direct = await budgetOf(d, 'direct');
    t.false(direct.instance.poolIds.includes('pgb'), 'its max is not counted against the server');
    const deep = await p.deepHealthCheck('pgb');
    t.true(deep.checks.serverBudget.healthy);
    t.regex(deep.checks.serverBudget.message, /pooler/);
    t.false([...liveServerBudgets()].some((b) => b.poolId === 'pgb' && b.via === 'server'));
  },
);

test.serial('the instrumentation: gauges per pool with server attributes (meter mode; a removed pool reads 0), and the Prometheus text lints', async (t) => {
  // Meter mode, read by an in-memory reader.
  class Reader extends MetricReader {
    protected override async onShutdown(): Promise<void> {}
    protected override async onForceFlush(): Promise<void> {}
  }
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  t.teardown(() => provider.shutdown());
  const inst = new DbPoolInstrumentation({ metricsExport: 'meter' });
  inst.setMeterProvider(provider);
  inst.enable();
  t.teardown(() => inst.disable());
  const d = db(t, { g1: { max: 6, min: 1 }, g2: { max: 2, min: 1 } });
  const b = await budgetOf(d, 'g1');
  await budgetOf(d, 'g2');
  const read = async () => {
    const { resourceMetrics } = await reader.collect();
    const points = new Map<string, Map<string, number>>();
    for (const sm of resourceMetrics.scopeMetrics) {
      for (const m of sm.metrics) {
        if (!m.descriptor.name.startsWith('db_pool.server.')) continue;
        const byPool = new Map<string, number>();
        for (const dp of m.dataPoints) {
          const a = dp.attributes;
          t.is(a['server.address'], b.serverAddress);
          t.is(a['server.port'], b.serverPort);
          t.is(a['db.namespace'], b.database ?? undefined);
          byPool.set(String(a['db.client.connection.pool.name']), dp.value as number);
        }
        points.set(m.descriptor.name, byPool);
      }
    }
    return points;
  };
  const live = await read();
  t.is(live.get('db_pool.server.connection.limit')?.get('g1'), b.maxConnections);
  t.is(live.get('db_pool.server.connection.reserved')?.get('g1'), b.maxConnections - b.usableConnections);
  t.is(live.get('db_pool.server.connection.pool_max')?.get('g1'), 6);
  t.is(live.get('db_pool.server.connection.pool_max')?.get('g2'), 2);
  t.is(live.get('db_pool.server.connection.pool_open')?.get('g1'), 1);
  t.true((live.get('db_pool.server.connection.backends')?.get('g1') ?? 0) >= 1, 'g1 counts at least itself');
  await d.removePool('g2');
  const after = await read();
  t.is(after.get('db_pool.server.connection.pool_max')?.get('g2'), 0, 'a removed pool reads 0');
  t.is(after.get('db_pool.server.connection.pool_max')?.get('g1'), 6);

  // Producer mode, through startPrometheusExporter: the names Prometheus gets, linted by promtool.
  const exporter = await startPrometheusExporter({ port: 0 });
  t.teardown(() => exporter.shutdown());
  const text = await (await fetch(exporter.url)).text();
  for (const name of ['limit', 'reserved', 'backends', 'pool_max', 'pool_open']) {
    t.regex(
      text,
      new RegExp(
        `^db_pool_server_connection_${name}\\{db_client_connection_pool_name="g1",server_address="${b.serverAddress.replace(/\./g, '\\.')}",server_port="${b.serverPort}",db_namespace="${b.database}"`,
        'm',
      ),
      name,
    );
  }
  if (findTool('promtool') !== undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'db-pool-budget-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'metrics.txt');
    await writeFile(file, text);
    const r = await runTool('bash', ['-c', `"${requireTool('promtool')}" check metrics < "${file}"`]);
    t.false(/db_pool_server/.test(r.stdout + r.stderr), `promtool check metrics on the budget series: ${r.stdout}${r.stderr}`);
  }
});

test.serial('admin endpoint and CLI: db-pool budget and db-pool metrics show it; exit 1 when over budget', async (t) => {
  // web alone may take every usable slot, jobs 10 more.
  const usable = (await budgetOf(db(t, { sizing: { max: 1, min: 1 } }), 'sizing')).usableConnections;
  const d = db(t, { web: { max: usable - 1, min: 1 }, jobs: { max: 10, min: 1 } });
  const b = await budgetOf(d, 'web');
  await budgetOf(d, 'jobs');
  const claim = usable - 1 + 10 + 1; // web, jobs and sizing
  const admin = await adminFor(t, d);
  const env = { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: TOKEN };
  const call = async (args: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await run(args, { env, stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
    return { code, stdout, stderr };
  };
  const server = `${b.serverAddress}:${b.serverPort}`;
  const human = await call(['budget']);
  t.is(human.code, 1, `over budget (${claim} > ${b.usableConnections}): exit 1\n${human.stdout}${human.stderr}`);
  t.regex(
    human.stdout,
    new RegExp(
      `^${server.replace(/\./g, '\\.')}\\s+server\\s+${b.maxConnections}\\s+${b.maxConnections - b.usableConnections}\\s+${b.usableConnections}\\s+\\d+\\s+${claim}\\s+3\\s`,
      'm',
    ),
  );
  t.regex(human.stdout, new RegExp(`warning: the pools of this app may open ${claim} connections`));
  const json = await call(['budget', '--json']);
  const report = JSON.parse(json.stdout) as { servers: Array<{ server: string; instanceMax: number; usableConnections: number; overBudget: boolean }> };
  t.like(report.servers[0], { server, instanceMax: claim, usableConnections: b.usableConnections, overBudget: true });
  const metrics = await call(['metrics', 'web']);
  t.is(metrics.code, 0);
  t.regex(
    metrics.stdout,
    new RegExp(`server budget\\s+${b.usableConnections} usable of max_connections ${b.maxConnections} .*may open ${claim} \\(3 open\\) - OVER BUDGET`),
  );
  const health = await call(['health']);
  t.regex(health.stdout, new RegExp(`^warning: the pools of this process \\([a-z, ]+\\) may open ${claim} connections`, 'm'));
  // Within budget: exit 0, no warning.
  await d.updatePoolConfig('web', { max: 5 });
  const fine = await call(['budget']);
  t.is(fine.code, 0, fine.stdout);
  t.notRegex(fine.stdout, /warning/);
});
