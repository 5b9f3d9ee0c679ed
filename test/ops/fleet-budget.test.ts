/**
 * The fleet's connection budget across processes (issue 18), end to end with real tools: three app
 * processes (test/support/fleet-app.ts: a DatabasePool, DbPoolInstrumentation and
 * startPrometheusExporter on port 0) with pools against one embedded PostgreSQL whose
 * max_connections is small (30, of which 3 + 2 reserved: 25 usable for the app's role); a real
 * Prometheus scraping them with grafana/prometheus-alerts.yml, a real Alertmanager with
 * grafana/alertmanager.yml, and a webhook receiver (test/support/fleet.ts).
 *
 * Proven: two instances with max 10 each (20 of 25) leave FleetConnectionBudgetExceeded silent;
 * a third instance (max 10, one connection open) makes the fleet's possible connections 30 > 25
 * and the alert reaches the receiver while every connect has succeeded and the fleet holds 21
 * connections; then the third instance's load makes the server refuse a connect with 53300 (the
 * prediction comes true), the fleet's open connections reach the limit and FleetConnectionsNearLimit
 * pages; stopping the third instance resolves both. Every call of the loaded instance ended with an
 * answer or a typed error, none past its deadline.
 *
 * Substitutions (test/support/fleet.ts): scrape and evaluation every second, every `for:`
 * of the rules' copy set to 1s, Alertmanager's group_wait / group_interval 1s. The load on the
 * third instance starts once the budget alert has been delivered: the point is that the alert is a
 * prediction from the pools' claims, raised while nothing fails yet, not a reaction to failures.
 */
import test from 'ava';
import { ordinaryRoleUrl, startOwnServer } from '../support/own-server.js';
import { BUDGET_ALERT, FLEET_FOR, FLEET_JOB, NEAR_LIMIT_ALERT, startFleetApp, startFleetMonitoring, type FleetApp } from '../support/fleet.js';
import { isTyped } from '../support/outcomes.js';
import { uniqueName } from '../support/helpers.js';
import { withTools } from '../support/prometheus-tools.js';

/** max_connections 30, 3 superuser-reserved, 2 reserved (PostgreSQL 16+): 25 usable. */
const SETTINGS = { max_connections: '30', superuser_reserved_connections: '3', reserved_connections: '2' };
const USABLE = 25;
const MAX = 10;

withTools(
  test.serial,
  ['prometheus'],
  ['prometheus-alertmanager', 'alertmanager'],
)('three processes: the over-budget alert fires before any connect fails with 53300, and resolves when an instance stops', async (t) => {
  t.timeout(150_000, 'the fleet test must stay within a few minutes');
  const started = Date.now();
  const since = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  const server = await startOwnServer({ settings: SETTINGS });
  t.teardown(() => server.destroy());
  t.true(server.major >= 16, `reserved_connections needs PostgreSQL 16+, the embedded server is ${server.major}`);
  // The app's role: not a superuser, so the reserved slots are not its to take.
  const url = await ordinaryRoleUrl(server, uniqueName('fleet_app'));
  const port = server.port;

  const mon = await startFleetMonitoring(t);
  t.log(`${since()}: PostgreSQL ${server.major} on 127.0.0.1:${port}, Prometheus ${mon.prom.url}, Alertmanager ${mon.am.url}`);
  const value = async (expr: string): Promise<number | undefined> => {
    const r = await mon.prom.query(expr);
    return r.length === 0 ? undefined : Number(r[0]!.value[1]);
  };
  const waitValue = async (what: string, expr: string, ok: (v: number | undefined) => boolean, timeoutMs = 30_000): Promise<number | undefined> => {
    const deadline = Date.now() + timeoutMs;
    let last: number | undefined;
    while (Date.now() < deadline) {
      last = await value(expr);
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for ${what}: ${expr} = ${last}`);
  };
  const sel = `{server_port="${port}"}`;
  const tooMany = (apps: FleetApp[]) =>
    apps.flatMap((a) => a.events.filter((e) => e.event === 'too-many-connections').map((e) => ({ app: a.name, at: Number(e.at) })));

  // Two instances, every connection open (min = max = 10): 20 of 25 usable.
  const [a, b] = await Promise.all([
    startFleetApp(t, { url, name: 'fleet-a', max: MAX, min: MAX }),
    startFleetApp(t, { url, name: 'fleet-b', max: MAX, min: MAX }),
  ]);
  const readyBudget = a.events.find((e) => e.event === 'ready')!.budget as { usableConnections: number; maxConnections: number; reservedConnections: number };
  t.is(readyBudget.usableConnections, USABLE, 'the app read the usable slots: 30 - 3 - 2');
  mon.setTargets([a.port, b.port]);
  await waitValue('the fleet max of two instances', `server:db_pool_server_connection_pool_max:sum${sel}`, (v) => v === 2 * MAX);
  await waitValue('their open connections', `server:db_pool_server_connection_pool_open:sum${sel}`, (v) => v === 2 * MAX);
  t.is(await value(`server:db_pool_server_connection_usable:max${sel}`), USABLE);
  t.is(await value(`server:db_pool_server_connection_limit:max${sel}`), 30);
  t.is(await value(`server:db_pool_server_connection_reserved:max${sel}`), 5);
  // Within budget: five evaluations with the fleet max recorded (every for: is FLEET_FOR, 1s) and the
  // alert is neither pending nor firing.
  await waitValue('three evaluations within budget', `count_over_time(server:db_pool_server_connection_pool_max:sum${sel}[1m])`, (v) => (v ?? 0) >= 5);
  t.is(await value(`ALERTS{alertname="${BUDGET_ALERT}"}`), undefined, `silent with 20 of 25 (for: ${FLEET_FOR})`);
  t.false(mon.hook.deliveries.some((d) => d.body.alerts.some((x) => x.labels.alertname === BUDGET_ALERT)));
  t.log(`${since()}: two instances, fleet max 20 of ${USABLE} usable: silent`);

  // The deploy: a third instance, one connection open, may open 10.
  const c = await startFleetApp(t, { url, name: 'fleet-c', max: MAX, min: 1, acquireTimeoutMs: 2_000 });
  const deployedAt = Date.now();
  mon.setTargets([a.port, b.port, c.port]);
  const fired = await mon.waitForAlert(BUDGET_ALERT, port, 'firing', 30_000);
  const firedAt = fired.delivery.receivedAt;
  t.is(fired.delivery.path, '/db-pool/warning');
  t.like(fired.alert.labels, { alertname: BUDGET_ALERT, severity: 'warning', server_address: '127.0.0.1', server_port: String(port) });
  t.is(fired.alert.annotations.summary, `The fleet may open 120% of the usable connections of 127.0.0.1:${port}`);
  t.is(fired.alert.annotations.runbook_url, 'https://github.com/db-pool-otel/db-pool-otel/blob/main/docs/runbooks.md#runbook-fleetconnectionbudgetexceeded');
  // Nothing has failed yet: the alert is the arithmetic, ahead of the failures.
  t.deepEqual(tooMany([a, b, c]), [], 'no connect refused with 53300 before the alert');
  const openAtAlert = await value(`server:db_pool_server_connection_pool_open:sum${sel}`);
  t.is(openAtAlert, 2 * MAX + 1, 'the fleet holds 21 of 25 when it fires');
  t.log(
    `${since()}: ${BUDGET_ALERT} at the webhook ${((firedAt - deployedAt) / 1000).toFixed(1)} s after the third instance came up (fleet max 30 of ${USABLE}, 21 open, no 53300)`,
  );

  // Its traffic arrives: it opens connections until the server refuses one.
  await c.load(MAX);
  const refused = await c.waitFor((e) => e.event === 'too-many-connections', 30_000);
  const refusedAt = Number(refused.at);
  t.true(refusedAt > firedAt, 'the first 53300 came after the alert');
  t.log(`${since()}: first 53300 ${((refusedAt - firedAt) / 1000).toFixed(1)} s after the alert reached the webhook: ${String(refused.message)}`);
  const paged = await mon.waitForAlert(NEAR_LIMIT_ALERT, port, 'firing', 30_000);
  t.is(paged.delivery.path, '/db-pool/critical');
  t.like(paged.alert.labels, { severity: 'critical', server_port: String(port) });
  const open = await value(`server:db_pool_server_connection_pool_open:sum${sel}`);
  t.true(open !== undefined && open >= 0.9 * USABLE && open <= USABLE, `fleet open ${open} of ${USABLE}`);
  t.log(`${since()}: ${NEAR_LIMIT_ALERT} paged (fleet open ${open} of ${USABLE})`);

  // The third instance stops: back within budget, both alerts resolve.
  const stats = await c.stop();
  const stoppedAt = Date.now();
  const [resolvedBudget, resolvedNear] = await Promise.all([
    mon.waitForAlert(BUDGET_ALERT, port, 'resolved', 30_000),
    mon.waitForAlert(NEAR_LIMIT_ALERT, port, 'resolved', 30_000),
  ]);
  t.log(
    `${since()}: resolved at the webhook ${((resolvedBudget.delivery.receivedAt - stoppedAt) / 1000).toFixed(1)} s (budget) and ` +
      `${((resolvedNear.delivery.receivedAt - stoppedAt) / 1000).toFixed(1)} s (near limit) after the instance stopped`,
  );
  t.is(await value(`server:db_pool_server_connection_pool_max:sum${sel}`), 2 * MAX);

  // Every call of the loaded instance: an answer or a typed error, none hung.
  t.truthy(stats, c.output().slice(-2_000));
  t.true(stats!.served > 0, `served ${stats!.served}`);
  t.is(stats!.hung, 0, `slowest ${Math.round(stats!.slowestMs)} ms, deadline ${stats!.deadlineMs} ms`);
  const untyped = Object.keys(stats!.rejected).filter((code) => !isTyped(code));
  t.deepEqual(untyped, [], JSON.stringify(stats!.rejected));
  t.log(
    `${since()}: fleet-c made ${stats!.requests} calls: ${stats!.served} served, rejected ${JSON.stringify(stats!.rejected)}, hung ${stats!.hung}; job ${FLEET_JOB}`,
  );
});
