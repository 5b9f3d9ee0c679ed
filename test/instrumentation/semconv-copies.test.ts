/**
 * What instrumentations/ copies instead of importing (so that importing the instrumentation entry
 * does not load @opentelemetry/semantic-conventions and @opentelemetry/core): each copy is the
 * package's own value or behaviour.
 */
import { ROOT_CONTEXT } from '@opentelemetry/api';
import * as core from '@opentelemetry/core';
import * as semconv from '@opentelemetry/semantic-conventions';
import test from 'ava';
import { millisToHrTime, suppressTracing } from '../../instrumentations/otel-helpers.js';
import * as ours from '../../instrumentations/semconv.js';

test('the stable semantic-convention names are the package’s', (t) => {
  const package_ = semconv as Record<string, unknown>;
  const stable = Object.entries(ours as Record<string, unknown>).filter(([name]) => name in package_);
  t.true(stable.length >= 12);
  for (const [name, value] of stable) t.is(value, package_[name], name);
});

test('suppressTracing sets the key core reads; millisToHrTime is core’s', (t) => {
  t.true(core.isTracingSuppressed(suppressTracing(ROOT_CONTEXT)));
  t.false(core.isTracingSuppressed(ROOT_CONTEXT));
  for (const ms of [0, 1, 999.9999, 1_000, 1_733_580_000_123.456, Date.now(), 0.0000005]) t.deepEqual(millisToHrTime(ms), core.millisToHrTime(ms), String(ms));
});
