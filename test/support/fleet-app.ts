/**
 * One instance of an app fleet, run as a child process by test/support/fleet.ts: a
 * DatabasePool with one pool against FLEET_DATABASE_URL, DbPoolInstrumentation and
 * startPrometheusExporter on port 0, and a load driver the parent controls.
 *
 * Environment: FLEET_DATABASE_URL, FLEET_NAME (application_name and service name), FLEET_MAX,
 * FLEET_MIN, FLEET_ACQUIRE_TIMEOUT_MS, FLEET_QUERY_MS (how long each call holds its connection).
 *
 * stdout, one JSON object a line:
 *   {"event":"ready","port":N,"pid":N,"budget":{...}}       once the pool has read its server's budget
 *   {"event":"too-many-connections","at":ms,"message":"..."} each connect refused with 53300 (from the
 *                                                            core's db-pool:connect channel)
 *   {"event":"stats",...}                                    on "stats", and before exiting
 * stdin, one command a line: "load N" (N callers, each running one call after another; 0 stops
 * them), "stats", "exit". SIGTERM or the end of stdin (the parent went away) close everything.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { createInterface } from 'node:readline';
import { CHANNELS, DatabasePool, type ConnectMessage } from '../../src/index.js';
import { DbPoolInstrumentation, startPrometheusExporter } from '../../instrumentations/index.js';
import { LoadDriver } from './load-driver.js';
import { eventually } from './outcomes.js';

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const name = env('FLEET_NAME');
const acquireTimeoutMs = Number(env('FLEET_ACQUIRE_TIMEOUT_MS', '2000'));
const queryMs = Number(env('FLEET_QUERY_MS', '50'));
const print = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

// Connects refused because the server is full, as the core publishes them (independent of the budget code).
tracingChannel<ConnectMessage>(CHANNELS.connect).subscribe({
  start() {},
  end() {},
  asyncStart() {},
  asyncEnd() {},
  error(m) {
    const e = m.error as { code?: unknown; message?: unknown } | undefined;
    if (e?.code === '53300') print({ event: 'too-many-connections', at: Date.now(), message: String(e.message) });
  },
});

const instrumentation = new DbPoolInstrumentation({ metricsExport: 'producer' });
const exporter = await startPrometheusExporter({ port: 0, serviceName: name, instrumentation });
const db = new DatabasePool({
  logger: null,
  pools: {
    main: {
      connection: { connectionString: env('FLEET_DATABASE_URL') },
      max: Number(env('FLEET_MAX')),
      min: Number(env('FLEET_MIN', '1')),
      acquireTimeoutMs,
      queryTimeoutMs: queryMs + 5_000,
      applicationName: name,
    },
  },
});

/** Every call is bounded by the acquire timeout, the statement and a margin: past it, it counts as hung. */
const deadlineMs = acquireTimeoutMs + queryMs + 5_000;
const drivers: LoadDriver[] = [];
const sql = `SELECT pg_sleep(${queryMs / 1000})`;

function stats(): Record<string, unknown> {
  const rejected: Record<string, number> = {};
  let requests = 0;
  let served = 0;
  let hung = 0;
  let slowestMs = 0;
  for (const d of drivers) {
    const l = d.ledger;
    requests += l.requests;
    served += l.served;
    hung += l.hung;
    slowestMs = Math.max(slowestMs, l.slowestMs);
    for (const [code, n] of Object.entries(l.rejected)) rejected[code] = (rejected[code] ?? 0) + n;
  }
  const s = db.getPoolStatus('main');
  return {
    event: 'stats',
    requests,
    served,
    rejected,
    hung,
    slowestMs,
    deadlineMs,
    pool: { open: s.total - s.pendingCreates, active: s.active, idle: s.idle, waiting: s.waiting, max: s.max },
    budget: db.getMetrics('main').serverBudget,
  };
}

/** The callers now; every driver so far is kept in `drivers` for the stats. */
let current: LoadDriver | undefined;
async function setLoad(n: number): Promise<void> {
  const old = current;
  current = undefined;
  await old?.stop(); // the old callers finish their call first
  if (n > 0) drivers.push((current = new LoadDriver(() => db.query('main', sql), n, deadlineMs, 20).start()));
}

let closing: Promise<void> | undefined;
function shutdown(): Promise<void> {
  closing ??= (async () => {
    await Promise.all(drivers.map((d) => d.stop()));
    print(stats());
    await db.close({ drainTimeoutMs: 2_000 });
    await exporter.shutdown();
    process.exit(0);
  })();
  return closing;
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'load') void setLoad(Number(arg ?? 0)).then(() => print({ event: 'load', callers: Number(arg ?? 0) }));
  else if (cmd === 'stats') print(stats());
  else if (cmd === 'exit') void shutdown();
});
lines.on('close', () => void shutdown());

await eventually(() => db.getMetrics('main').serverBudget !== null, 30_000, 20);
print({ event: 'ready', port: exporter.port, pid: process.pid, budget: db.getMetrics('main').serverBudget });
