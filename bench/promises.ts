/**
 * Promises made per query, per contender: a count, not a timing, so it reads the same on a busy
 * machine. Why it matters: under the AsyncLocalStorage context manager every OpenTelemetry setup
 * registers, Node 20 runs async-hook code for every promise (init, before, after, resolve), so a
 * path that makes many promises pays for context propagation many times per query, whether or not
 * a span records.
 *
 *   DATABASE_URL=postgres://... npx tsx bench/promises.ts [--contenders "pg.Pool;ours;ours, metrics only"] [--kind select1|param]
 *
 * Each contender runs in a fresh process (its setup patches modules and registers globals): one
 * caller, 200 queries to warm up, then the PROMISE inits of an async hook over 2 000 sequential
 * queries (the loop's own await included: 1 per query).
 */
import { execFileSync } from 'node:child_process';
import { createHook } from 'node:async_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CONTENDERS, type OpKind, parseContenderList } from './contenders.js';

const { values: o } = parseArgs({
  options: {
    contenders: {
      type: 'string',
      default:
        'pg.Pool;ours;knex;knex on ours;pg.Pool + instrumentation-pg, metrics only;ours, metrics only;pg.Pool + instrumentation-pg, all spans;ours + spans + metrics, all spans',
    },
    kind: { type: 'string', default: 'select1' },
    one: { type: 'string' },
  },
});
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL is required');
const kind = o.kind as OpKind;

if (o.one !== undefined) {
  // A child: one contender.
  const factory = CONTENDERS[o.one];
  if (factory === undefined) throw new Error(`no contender ${o.one}`);
  const c = await factory({ databaseUrl });
  const op = c.op({ kind });
  for (let i = 0; i < 200; i++) await op(0, i);
  let promises = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') promises++;
    },
  });
  const n = 2_000;
  hook.enable();
  for (let i = 0; i < n; i++) await op(0, i);
  hook.disable();
  await c.close();
  console.log(JSON.stringify({ name: o.one, perQuery: promises / n }));
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
console.log(`| contender (${kind}, one caller) | promises per query |\n| --- | --- |`);
for (const name of parseContenderList(o.contenders!)) {
  const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--one', name, '--kind', kind], { encoding: 'utf8', env: process.env });
  const line = out.trim().split('\n').pop()!;
  const r = JSON.parse(line) as { name: string; perQuery: number };
  console.log(`| ${r.name} | ${r.perQuery.toFixed(1)} |`);
}
