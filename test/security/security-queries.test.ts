/**
 * Query text sanitized by default in spans, slow-query logs and everything that shows them; SQL
 * values always sent as bound parameters (test/support/scenarios/security.ts).
 */
import test from 'ava';
import { parametersScenario, sanitizedTextScenario } from '../support/scenarios/security.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

const ctx = (t: { log(...v: unknown[]): void }) => ({ databaseUrl: databaseUrl(), log: (l: string) => t.log(l) });

test('no literal of a statement appears in spans, slow-query logs, reports, admin responses or CLI output', async (t) => {
  assertScenario(t, await sanitizedTextScenario(ctx(t), { errorsQuoting: false }));
});

// Was a bug: a failed slow query's entry kept the server's message, which quotes the offending
// literal or bound value (`invalid input syntax for type integer: "..."`); it keeps the SQLSTATE now.
test('a failed slow query does not quote its literal or bound value in the slow-query log', async (t) => {
  assertScenario(t, await sanitizedTextScenario(ctx(t), { errorsQuoting: true }));
});

test("values like '; DROP TABLE x; -- round-trip as data: bound as parameters, never pasted into the statement", async (t) => {
  assertScenario(t, await parametersScenario(ctx(t)));
});
