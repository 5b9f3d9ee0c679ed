/**
 * The fleet pushed past its server's limit (issue 18): four app processes
 * (test/support/fleet-app.ts) with pools against one embedded PostgreSQL whose
 * max_connections is small (30; 3 + 2 reserved: 25 usable for the app's role), watched by a real
 * Prometheus with grafana/prometheus-alerts.yml and a real Alertmanager with grafana/alertmanager.yml
 * sending to a local receiver (test/support/fleet.ts, with its documented substitutions:
 * 1 s scrapes and evaluations, every `for:` 1s, 1 s Alertmanager grouping).
 *
 * Two instances run under load, every connection open (max 8 each: 16 of 25). Two more are
 * deployed (max 8 each, one connection open): the fleet may now open 32. Once the budget alert has
 * reached the receiver, their traffic arrives too, with more callers than connections everywhere:
 * the server refuses connects with 53300 while every instance keeps serving with what it holds.
 * Then the two new instances stop and the alert resolves.
 *
 * Checks: the alert reached the receiver while no connect had failed, and before the first
 * 53300; the 53300s did come (the alert's arithmetic was right); FleetConnectionsNearLimit paged;
 * no call outlived its deadline; every call got an answer or a typed error; every instance served
 * during the overload; the alert resolved; no server connection of the app left after the fleet
 * stopped.
 */
import pg from 'pg';
import { startOwnServer, type OwnServer } from '../own-server.js';
import { BUDGET_ALERT, NEAR_LIMIT_ALERT, Teardowns, startFleetApp, startFleetMonitoring, type FleetApp, type FleetStats } from '../fleet.js';
import { Checks, eventually, formatCodes, isTyped, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { findTool } from '../prometheus-tools.js';

const SETTINGS = { max_connections: '30', superuser_reserved_connections: '3', reserved_connections: '2' };
const USABLE = 25;
const MAX = 8;
/** Callers per instance during the overload: more than its max. */
const CALLERS = 12;
/** Calls each new instance must serve after its first 53300 before the overload ends. */
const SERVED_AFTER_REFUSAL = 50;

/** A role of the app: not a superuser, so the reserved slots are not its to take. */
async function appRole(server: OwnServer): Promise<{ url: string; role: string }> {
  const role = `fleet_rel_${process.pid}`;
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const su = new pg.Client({ connectionString: server.url });
  await su.connect();
  try {
    await su.query(`DROP ROLE IF EXISTS ${role}`);
    await su.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  } finally {
    await su.end();
  }
  const u = new URL(server.url);
  u.username = role;
  u.password = password;
  return { url: u.toString(), role };
}

async function roleConnections(server: OwnServer, role: string): Promise<number> {
  const su = new pg.Client({ connectionString: server.url });
  await su.connect();
  try {
    const { rows } = await su.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [role]);
    return rows[0]!.n;
  } finally {
    await su.end();
  }
}

export async function fleetScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const checks = new Checks();
  const figures: Record<string, string | number> = {};
  const name = "fleet past the server's connection limit";
  const missing = ['prometheus', 'prometheus-alertmanager'].filter(
    (tool) => findTool(tool, tool === 'prometheus-alertmanager' ? 'alertmanager' : tool) === undefined,
  );
  if (missing.length > 0) {
    checks.add('Prometheus and Alertmanager are installed', false, `missing: ${missing.join(', ')} (scripts/system-packages.sh installs them)`);
    return { name, requests: 0, served: 0, rejected: {}, hung: 0, leaked: 0, figures, checks: checks.list, durationMs: performance.now() - started };
  }
  const scope = new Teardowns();
  const stats: FleetStats[] = [];
  let leaked = 0;
  try {
    const server = await startOwnServer({ settings: SETTINGS });
    scope.teardown(() => server.destroy());
    const { url, role } = await appRole(server);
    const port = server.port;
    const mon = await startFleetMonitoring(scope);
    ctx.log(`fleet: PostgreSQL ${server.major} on 127.0.0.1:${port} (max_connections 30, 25 usable), Prometheus ${mon.prom.url}`);

    const apps: FleetApp[] = [];
    const refusals = () => apps.flatMap((a) => a.events.filter((e) => e.event === 'too-many-connections').map((e) => ({ app: a.name, at: Number(e.at) })));

    // Two instances under load, every connection open: 16 of 25.
    const first = await Promise.all(['fleet-a', 'fleet-b'].map((n) => startFleetApp(scope, { url, name: n, max: MAX, min: MAX, acquireTimeoutMs: 2_000 })));
    apps.push(...first);
    mon.setTargets(apps.map((a) => a.port));
    await Promise.all(first.map((a) => a.load(CALLERS)));

    // The deploy: two more, one connection each. The fleet may open 32 of 25.
    const more = await Promise.all(['fleet-c', 'fleet-d'].map((n) => startFleetApp(scope, { url, name: n, max: MAX, min: 1, acquireTimeoutMs: 2_000 })));
    const deployedAt = Date.now();
    apps.push(...more);
    mon.setTargets(apps.map((a) => a.port));
    figures.processes = apps.length;
    figures['fleet max / usable'] = `${apps.length * MAX} / ${USABLE}`;
    let firedAt: number | undefined;
    try {
      firedAt = (await mon.waitForAlert(BUDGET_ALERT, port, 'firing', 60_000)).delivery.receivedAt;
    } catch (err) {
      checks.add(`${BUDGET_ALERT} reached the receiver`, false, String(err));
    }
    const before = refusals();
    if (firedAt !== undefined) {
      checks.add(
        `${BUDGET_ALERT} reached the receiver while no connect had failed`,
        before.length === 0,
        before.map((r) => r.app).join(', ') || 'no 53300 yet',
      );
      figures['alert after the deploy (s)'] = ((firedAt - deployedAt) / 1000).toFixed(1);
    }

    // Their traffic arrives: the fleet opens what it may, the server refuses the rest.
    await Promise.all(more.map((a) => a.load(CALLERS)));
    // Whichever instance gets the last free slots is not refused; the others are.
    const refused = await eventually(() => refusals().length > 0, 30_000, 50);
    const all = refusals();
    const firstRefusal = Math.min(...all.map((r) => r.at));
    const open = await Promise.all(apps.map(async (a) => `${a.name} ${(await a.stats()).pool.open}`));
    checks.add(
      'the server refused connects with 53300 once the fleet opened what it may',
      refused,
      `${all.length} refusals so far (${[...new Set(all.map((r) => r.app))].join(', ')}); open: ${open.join(', ')}`,
    );
    if (firedAt !== undefined && all.length > 0) {
      checks.add(
        'the alert fired before the first 53300',
        firedAt < firstRefusal,
        `alert ${new Date(firedAt).toISOString()}, first 53300 ${new Date(firstRefusal).toISOString()}`,
      );
      figures['first 53300 after the alert (s)'] = ((firstRefusal - firedAt) / 1000).toFixed(1);
    }
    const paged = await mon.waitForAlert(NEAR_LIMIT_ALERT, port, 'firing', 30_000).then(
      () => true,
      () => false,
    );
    checks.add(`${NEAR_LIMIT_ALERT} paged`, paged, '');
    // Every instance keeps serving through the overload.
    const servedBefore = await Promise.all(apps.map((a) => a.stats()));
    const kept = await eventually(
      async () => {
        const now = await Promise.all(apps.map((a) => a.stats()));
        return now.every((s, i) => s.served >= servedBefore[i]!.served + SERVED_AFTER_REFUSAL);
      },
      30_000,
      250,
    );
    checks.add(`every instance served ${SERVED_AFTER_REFUSAL} more calls during the overload`, kept, '');

    // The two new instances stop: back within budget.
    const stoppedAt = Date.now();
    for (const a of more) {
      const s = await a.stop();
      if (s) stats.push(s);
    }
    const resolved = await mon.waitForAlert(BUDGET_ALERT, port, 'resolved', 30_000).then(
      (r) => r.delivery.receivedAt,
      () => undefined,
    );
    checks.add(
      `${BUDGET_ALERT} resolved once the two instances stopped`,
      resolved !== undefined,
      resolved === undefined ? 'not resolved in 30 s' : `${((resolved - stoppedAt) / 1000).toFixed(1)} s after`,
    );
    for (const a of first) {
      const s = await a.stop();
      if (s) stats.push(s);
    }
    checks.add('every instance exited and reported its calls', stats.length === apps.length, `${stats.length} of ${apps.length}`);
    const settled = await eventually(async () => (await roleConnections(server, role)) === 0, 10_000);
    leaked = settled ? 0 : await roleConnections(server, role);
  } catch (err) {
    checks.add('the scenario ran to the end', false, err instanceof Error ? err.message.slice(0, 500) : String(err));
  } finally {
    await scope.run();
  }
  const rejected: Record<string, number> = {};
  for (const s of stats) for (const [code, n] of Object.entries(s.rejected)) rejected[code] = (rejected[code] ?? 0) + n;
  const requests = stats.reduce((n, s) => n + s.requests, 0);
  const served = stats.reduce((n, s) => n + s.served, 0);
  const hung = stats.reduce((n, s) => n + s.hung, 0);
  const untyped = Object.keys(rejected).filter((c) => !isTyped(c));
  checks.add('every caller got an answer or a typed error', untyped.length === 0 && requests > 0, untyped.join('; ') || formatCodes(rejected));
  checks.add(
    'no call outlived its deadline (no pool hung)',
    hung === 0,
    `slowest ${Math.round(Math.max(0, ...stats.map((s) => s.slowestMs)))} ms, deadline ${stats[0]?.deadlineMs ?? '?'} ms`,
  );
  checks.add('no connection of the app left on the server after the fleet stopped', leaked === 0, `${leaked}`);
  return { name, requests, served, rejected, hung, leaked, figures, checks: checks.list, durationMs: performance.now() - started };
}
