/**
 * Faults at CI size (test/support/scenarios/faults.ts; `npm run reliability` repeats each more often
 * under more load): a TCP proxy resets, stalls and slows the connections of a pool under load;
 * pg_terminate_backend kills its busy and idle connections; a host name that never resolves.
 * Each scenario checks its errors are typed and clear, the pool heals by itself, the server-side
 * connection count returns to the pool's own, and no call outlives its timeouts.
 */
import test from 'ava';
import { FAULTS_CI, dnsScenario, resetPlan, runFault, slowPlan, stallPlan, terminatePlan } from '../support/scenarios/faults.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

const ctx = (t: { log(...v: unknown[]): void }) => ({ databaseUrl: databaseUrl(), log: (l: string) => t.log(l) });

test('connection reset mid-query: only the calls on the reset connections fail (ECONNRESET), the pool heals', async (t) => {
  assertScenario(t, await runFault(ctx(t), resetPlan(), FAULTS_CI));
});

test('stalled server: QUERY_TIMEOUT / ACQUIRE_TIMEOUT within the timeouts, the pool heals when it answers again', async (t) => {
  assertScenario(t, await runFault(ctx(t), stallPlan(), FAULTS_CI, 1));
});

test('slow server: calls slow down but none fails, and speed comes back', async (t) => {
  assertScenario(t, await runFault(ctx(t), slowPlan(), FAULTS_CI, 1));
});

test('pg_terminate_backend of busy and idle connections: 57P01 at most once per killed connection, the pool refills', async (t) => {
  assertScenario(t, await runFault(ctx(t), terminatePlan(databaseUrl()), FAULTS_CI));
});

test('DNS-unresolvable host: typed errors with the cause ENOTFOUND, paced attempts, heals when pointed at a real host', async (t) => {
  assertScenario(t, await dnsScenario(ctx(t), { burst: 50, sequentialMs: 1_500 }));
});
