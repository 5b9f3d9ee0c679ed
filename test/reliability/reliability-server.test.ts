/**
 * Faults on a PostgreSQL server this test controls (an embedded PostgreSQL started here, with
 * password authentication and max_connections 24, whatever DATABASE_URL is): a real restart under
 * load, the pool's role's password changed under it and restored, and the server at
 * max_connections. Same scenarios as `npm run reliability` (test/support/scenarios/server-faults.ts).
 */
import test from 'ava';
import { FAULTS_CI } from '../support/scenarios/faults.js';
import { OWN_SERVER_SETTINGS, authPlan, maxConnectionsScenario, restartPlan, runFault } from '../support/scenarios/server-faults.js';
import { startOwnServer, type OwnServer } from '../support/own-server.js';
import { assertScenario } from '../support/report.js';

let server: OwnServer;
test.before(async () => {
  server = await startOwnServer({ settings: OWN_SERVER_SETTINGS });
});
test.after.always(async () => {
  await server?.destroy();
});

const ctx = (t: { log(...v: unknown[]): void }) => ({ databaseUrl: server.url, log: (l: string) => t.log(l) });

test.serial('server restart under load: typed errors while it is down, the pool recovers by itself', async (t) => {
  t.log(`own PostgreSQL ${server.major} on 127.0.0.1:${server.port}`);
  assertScenario(t, await runFault(ctx(t), restartPlan(server), FAULTS_CI));
});

test.serial(
  'authentication failure: CONNECTION_FAILED / CIRCUIT_OPEN with the cause 28P01, no password anywhere, heals when the password is back',
  async (t) => {
    assertScenario(t, await runFault(ctx(t), await authPlan(server), FAULTS_CI, 1));
  },
);

test.serial('server at max_connections: typed errors with the cause 53300, serves with what it gets, grows when there is room', async (t) => {
  assertScenario(t, await maxConnectionsScenario(ctx(t), server, FAULTS_CI));
});
