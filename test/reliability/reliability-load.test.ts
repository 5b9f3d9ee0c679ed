/**
 * Load and soak at CI size (the same scenarios `npm run reliability` runs at full size, see
 * test/support/scenarios/): 10 000 concurrent callers on a pool of 10, and a soak with the
 * OpenTelemetry instrumentation on.
 */
import test from 'ava';
import { LOAD_CI, loadScenario } from '../support/scenarios/load.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

test('load: 10 000 concurrent callers on a pool of 10 — each served or rejected with ACQUIRE_TIMEOUT / QUEUE_FULL, none hung or served twice, FIFO, nothing leaked', async (t) => {
  const r = await loadScenario({ databaseUrl: databaseUrl(), log: (l) => t.log(l) }, LOAD_CI);
  assertScenario(t, r);
});
