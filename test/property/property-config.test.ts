/**
 * Bad input, property-based (test/support/scenarios/properties.ts): generated configs, config files
 * and pool ids end in success or a typed error, never a crash or hang, and a rejection changes
 * nothing. Generated hosts only ever reach a closed loopback port or a `.invalid` name.
 */
import test from 'ava';
import { PROPERTIES_CI, configProperties, poolIdProperties } from '../support/scenarios/properties.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

const ctx = (t: { log(...v: unknown[]): void }) => ({ databaseUrl: databaseUrl(), log: (l: string) => t.log(l) });

test('configs (createPool, new DatabasePool, updatePoolConfig, config files): INVALID_CONFIG or a pool, a rejection changes nothing', async (t) => {
  assertScenario(t, await configProperties(ctx(t), PROPERTIES_CI));
});

test('pool ids: every method answers with a typed error or works; the pools change only by createPool / removePool', async (t) => {
  assertScenario(t, await poolIdProperties(ctx(t), PROPERTIES_CI));
});
