/**
 * Bad input, property-based (test/support/scenarios/properties.ts): generated SQL text and values on
 * a real pool end in a result or a typed error, the loan always comes back, the pool serves on and
 * its server-side connections stay its own; generated strings round-trip as bound values.
 */
import test from 'ava';
import { PROPERTIES_CI, sqlProperties } from '../support/scenarios/properties.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

test('SQL text and values: a result or a typed error, nothing leaked, strings round-trip', async (t) => {
  assertScenario(t, await sqlProperties({ databaseUrl: databaseUrl(), log: (l) => t.log(l) }, PROPERTIES_CI));
});
