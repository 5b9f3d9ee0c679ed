/**
 * The admin endpoint's routes × tokens × modes, and the number of metric series with 10 000
 * distinct statements (test/support/scenarios/security.ts).
 */
import test from 'ava';
import { adminMatrixScenario, seriesBoundScenario } from '../support/scenarios/security.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

const ctx = (t: { log(...v: unknown[]): void }) => ({ databaseUrl: databaseUrl(), log: (l: string) => t.log(l) });

test('admin endpoint: every route × token presentation × mode answers as documented, refusals change nothing', async (t) => {
  assertScenario(t, await adminMatrixScenario(ctx(t)));
});

test('metric series stay bounded with 10 000 distinct statements; no label carries SQL or a literal', async (t) => {
  assertScenario(t, await seriesBoundScenario(ctx(t), { statements: 10_000 }));
});
