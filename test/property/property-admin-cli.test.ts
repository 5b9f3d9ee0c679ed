/**
 * Bad input, property-based (test/support/scenarios/properties.ts): generated admin requests (method,
 * path, query, content type, body, token) and `db-pool` command lines against a live endpoint: a
 * documented answer, never a 500, a throw or a hang; a refusal changes no config; no token echoed.
 */
import test from 'ava';
import { PROPERTIES_CI, adminBodyProperties, cliEmptyPoolScenario, cliProperties, doubleSlashScenario } from '../support/scenarios/properties.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

const ctx = (t: { log(...v: unknown[]): void }) => ({ databaseUrl: databaseUrl(), log: (l: string) => t.log(l) });

test('admin requests: documented statuses with JSON errors, no 500 or hang, refusals change nothing', async (t) => {
  assertScenario(t, await adminBodyProperties(ctx(t), PROPERTIES_CI));
});

test('CLI arguments: exit 0-3, no internal error or throw, no token printed, config unchanged unless it succeeded', async (t) => {
  assertScenario(t, await cliProperties(ctx(t), PROPERTIES_CI));
});

// Was a bug: a target starting with "//" was read as scheme-relative (`//x/pools` served as /pools,
// `//a%5E/b` answered 500).
test('a request target starting with // answers 400 / 404, never another route or 500', async (t) => {
  assertScenario(t, await doubleSlashScenario(ctx(t)));
});

// Was a bug: `db-pool config ""` requested /pools/ (served as /pools) and ended in an internal error.
test('`db-pool config ""` is a usage error (exit 2)', async (t) => {
  assertScenario(t, await cliEmptyPoolScenario(ctx(t)));
});
