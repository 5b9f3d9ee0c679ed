/**
 * No password, token, webhook URL or routing key in any log line, error, span, metric, config dump,
 * event, channel message, alert payload, admin response or CLI output (test/support/scenarios/security.ts).
 */
import test from 'ava';
import { secretsScenario } from '../support/scenarios/security.js';
import { assertScenario } from '../support/report.js';
import { databaseUrl } from '../support/helpers.js';

test('the test secrets appear in no output of the library, the admin endpoint or the CLI', async (t) => {
  assertScenario(t, await secretsScenario({ databaseUrl: databaseUrl(), log: (l) => t.log(l) }));
});
