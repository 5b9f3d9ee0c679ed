/**
 * Soak at CI size (`npm run reliability` runs 10⁶ queries): heap and RSS flat after the warm-up with
 * the OpenTelemetry instrumentation on; statement, slow-query, instrumentation and span-processor
 * memory bounded. In a file of its own: it keeps a core busy.
 */
import test from 'ava';
import { SOAK_CI, soakScenario } from '../support/scenarios/soak.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

test('soak: queries with instrumentation on — memory flat, bounded structures, nothing leaked', async (t) => {
  const r = await soakScenario({ databaseUrl: databaseUrl(), log: (l) => t.log(l) }, SOAK_CI);
  assertScenario(t, r);
});
