/**
 * The package as an app's TypeScript sees it: the packed tarball (what npm publishes), installed
 * into a strict app with `skipLibCheck: false`, under moduleResolution node16, nodenext and
 * bundler, once with knex and once without. The app's node_modules holds exactly what the packed
 * package.json declares (dependencies and required peers, linked from this checkout), plus
 * @types/node and, in the knex app, knex: a type the package uses but does not declare fails here.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');

/** `npm pack` of this checkout (built first), made once for both apps. */
let tarball = '';
test.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'db-pool-otel-pack-'));
  await run('node', ['scripts/build.mjs'], { cwd: ROOT, timeout: 180_000 });
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, timeout: 120_000 });
  tarball = join(dir, (JSON.parse(stdout) as [{ filename: string }])[0].filename);
});
test.after.always(() => {
  if (tarball) rmSync(dirname(tarball), { recursive: true, force: true });
});

/** Unpacks the tarball into `dir/node_modules/db-pool-otel`; returns its package.json. */
async function installPacked(dir: string): Promise<Record<string, unknown>> {
  const target = join(dir, 'node_modules', 'db-pool-otel');
  mkdirSync(target, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  return JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as Record<string, unknown>;
}

function link(dir: string, name: string): void {
  const to = join(dir, 'node_modules', name);
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules', name), to);
}

const APP = `
import { DatabasePool, InvalidConfigError, describeQuery, type PoolConfig, type DbPoolErrorCode } from 'db-pool-otel';
import { DbPoolInstrumentation } from 'db-pool-otel/instrumentation';

const config: PoolConfig = { connection: { connectionString: 'postgres://app@localhost/app' }, max: 5 };
const db = new DatabasePool({ pools: { main: config } });
export async function main(): Promise<number> {
  const { rows } = await db.query<{ n: number }>('main', 'SELECT 1 AS n');
  const n: number = rows[0]!.n;
  // @ts-expect-error rows are typed, not any: a number is not a string
  const s: string = rows[0]!.n;
  const untyped = await db.query('main', 'SELECT 1');
  // @ts-expect-error rows default to Record<string, unknown>, not any
  const u: number = untyped.rows[0]!.x;
  const code: DbPoolErrorCode = new InvalidConfigError([]).code;
  new DbPoolInstrumentation({ queryText: 'sanitized' }).disable();
  await db.close();
  return n + s.length + u + code.length + describeQuery('SELECT 1').summary.length;
}
`;

const KNEX_APP = `
import knex from 'knex';
import { DatabasePool } from 'db-pool-otel';
const db = new DatabasePool({ pools: { main: { connection: { connectionString: 'postgres://app@localhost/app' } } } });
export const k = knex(db.knexConfig('main'));
export const rows: Promise<{ id: number }[]> = k<{ id: number }>('t').select('id');
`;

const MODES: [string, string][] = [
  ['node16', 'node16'],
  ['nodenext', 'nodenext'],
  ['esnext', 'bundler'],
];

for (const withKnex of [false, true]) {
  test(`a strict app ${withKnex ? 'with' : 'without'} knex typechecks against the packed package (node16, nodenext, bundler; skipLibCheck false)`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'db-pool-otel-consumer-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const pkg = await installPacked(dir);
    const deps = Object.keys((pkg.dependencies ?? {}) as Record<string, string>);
    const optional = (pkg.peerDependenciesMeta ?? {}) as Record<string, { optional?: boolean }>;
    const peers = Object.keys((pkg.peerDependencies ?? {}) as Record<string, string>).filter((p) => !optional[p]?.optional);
    for (const name of [...deps, ...peers, '@types/node', ...(withKnex ? ['knex'] : [])]) link(dir, name);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(join(dir, 'app.ts'), APP);
    if (withKnex) writeFileSync(join(dir, 'knex-app.ts'), KNEX_APP);
    const failures: string[] = [];
    for (const [module, moduleResolution] of MODES) {
      const tsconfig = join(dir, `tsconfig.${moduleResolution}.json`);
      writeFileSync(
        tsconfig,
        JSON.stringify({
          compilerOptions: {
            strict: true,
            skipLibCheck: false,
            noEmit: true,
            module,
            moduleResolution,
            target: 'ES2022',
            types: ['node'],
            noUncheckedIndexedAccess: true,
          },
          files: withKnex ? ['app.ts', 'knex-app.ts'] : ['app.ts'],
        }),
      );
      try {
        await run(TSC, ['-p', tsconfig], { cwd: dir, timeout: 120_000 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        failures.push(`${moduleResolution}:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      }
    }
    t.deepEqual(failures, []);
  });
}
