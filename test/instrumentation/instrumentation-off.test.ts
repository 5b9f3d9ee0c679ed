/**
 * Without an enabled instrumentation the core has nobody to publish to: every channel is without
 * subscribers, so no message object is even built. (A file of its own: a fresh process.)
 */
import test from 'ava';
import { acquireChannel, connectChannel, leakChannel, poolChannel, queryChannel, releaseChannel, slowQueryChannel } from '../../src/index.js';
import { tracingActive } from '../../src/channels.js';
import { DbPoolInstrumentation } from '../../instrumentations/index.js';
import { newDb } from '../support/helpers.js';

function nothingSubscribed(): boolean {
  return (
    !tracingActive(acquireChannel) &&
    !tracingActive(queryChannel) &&
    !tracingActive(connectChannel) &&
    !releaseChannel.hasSubscribers &&
    !poolChannel.hasSubscribers &&
    !leakChannel.hasSubscribers &&
    !slowQueryChannel.hasSubscribers
  );
}

test.serial('with no instrumentation, no channel has a subscriber, before and after a workload', async (t) => {
  t.true(nothingSubscribed());
  const db = newDb(t, { quiet: { max: 2, min: 0 } });
  await db.query('quiet', 'SELECT 1');
  await db.transaction('quiet', async (tx) => tx.query('SELECT 2'));
  t.true(nothingSubscribed());
});

test.serial('a constructed-but-disabled instrumentation subscribes to nothing; disable() undoes enable()', async (t) => {
  const off = new DbPoolInstrumentation({ enabled: false });
  t.true(nothingSubscribed());
  const on = new DbPoolInstrumentation();
  t.false(nothingSubscribed());
  t.true(on.isEnabled());
  on.enable(); // twice: still one subscription each
  on.disable();
  t.true(nothingSubscribed());
  off.enable();
  off.disable();
  off.disable();
  t.true(nothingSubscribed());
});
