/**
 * The integrity scenario of `npm run reliability` at CI size: careless releases with BEGIN in
 * flight beside honest writes lose no acknowledged write; rolled-back commits reject, typed.
 */
import test from 'ava';
import { INTEGRITY_CI, integrityScenario } from '../support/scenarios/integrity.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

test('careless releases and rolled-back commits under load: no acknowledged write lost, every rolled-back commit rejected', async (t) => {
  assertScenario(t, await integrityScenario({ databaseUrl: databaseUrl(), log: (l) => t.log(l) }, INTEGRITY_CI));
});
