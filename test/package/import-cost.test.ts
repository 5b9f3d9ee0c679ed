/**
 * Cheap to import (issue 19): importing an entry point, from either build, loads what a pool or the
 * instrumentation needs and nothing of the features that load when used — zod (validation), the
 * admin endpoint, config files, diagnosis, the Prometheus exporter, and on the instrumentation entry
 * the pool facade and the OpenTelemetry packages it does not need. Then each feature is used and
 * must load its part, so the check is seen to see what it looks for, in both builds. Modules, not
 * timings: the figures are `bench/import-cost.ts`'s.
 *
 * A child process per case: CommonJS modules are read from `require.cache`; ES modules (not in it)
 * from a resolve hook that writes every resolved URL to a file.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

/** What must not load on import, by name; each is a pattern over the module's path. */
const ROOT_LAZY: Record<string, RegExp> = {
  zod: /\/node_modules\/zod\//,
  yaml: /\/node_modules\/yaml\//,
  opentelemetry: /\/node_modules\/@opentelemetry\//,
  'admin-server': /\/dist\/(cjs|esm)\/src\/admin\/admin-server\.js$/,
  'admin-routes': /\/dist\/(cjs|esm)\/src\/admin\/routes\.js$/,
  'config-file': /\/dist\/(cjs|esm)\/src\/config\/config-file\.js$/,
  diagnosis: /\/dist\/(cjs|esm)\/src\/ops\/diagnosis\.js$/,
};
const INSTRUMENTATION_LAZY: Record<string, RegExp> = {
  zod: /\/node_modules\/zod\//,
  '@opentelemetry/core': /\/node_modules\/@opentelemetry\/core\//,
  '@opentelemetry/semantic-conventions': /\/node_modules\/@opentelemetry\/semantic-conventions\//,
  '@opentelemetry/sdk-metrics': /\/node_modules\/@opentelemetry\/sdk-metrics\//,
  'prometheus-exporter': /\/dist\/(cjs|esm)\/instrumentations\/prometheus-exporter\.js$/,
  facade: /\/dist\/(cjs|esm)\/src\/(index|database-pool)\.js$/,
  'alerts, admin, adapters, config': /\/dist\/(cjs|esm)\/src\/(alerts|admin|adapters|config)\//,
  'generic-pool': /\/node_modules\/generic-pool\//,
};

/** Each resolved ES module URL, appended to the file named by LOADED_LOG (the hooks run off the main thread). */
const HOOKS = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.LOADED_LOG, r.url + '\\n');
  return r;
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

/** The program run in the child: `load` imports the entry; `use` exercises the lazy features; `loaded()` prints what loaded. */
function program(format: 'cjs' | 'esm', entry: 'src' | 'instrumentations', log: string): string {
  const file = join(root, 'dist', format, entry, 'index.js');
  const load = format === 'cjs' ? `const m = require(${JSON.stringify(file)});` : `const m = await import(${JSON.stringify(pathToFileURL(file).href)});`;
  const prelude =
    format === 'cjs'
      ? 'const { readFileSync } = require("node:fs");'
      : 'import { readFileSync } from "node:fs"; import { createRequire } from "node:module"; const require = createRequire(process.cwd() + "/");';
  const use =
    entry === 'src'
      ? `
        const db = new m.DatabasePool({ logger: null });
        await db.createPool('bad', { connection: { host: 'h' }, max: 'many' }).catch(() => {});
        const json = ${JSON.stringify(join(log, '..', 'pools.json'))};
        await m.loadConfigFile(json);
        const admin = await db.startAdminServer({ port: 0, token: 'x'.repeat(32) });
        await admin.close();
        await db.close();`
      : `
        const prom = await m.startPrometheusExporter({ port: 0 });
        await prom.shutdown();`;
  return `${prelude}
    const loaded = () => [...Object.keys(require.cache), ...readFileSync(${JSON.stringify(log)}, 'utf8').split('\\n').filter((u) => u.startsWith('file:')).map((u) => decodeURIComponent(new URL(u).pathname))];
    const main = async () => {
      ${load}
      const before = loaded();
      ${use}
      console.log(JSON.stringify({ before, after: loaded() }));
    };
    ${format === 'cjs' ? 'main();' : 'await main();'}`;
}

async function loadedModules(format: 'cjs' | 'esm', entry: 'src' | 'instrumentations'): Promise<{ before: string[]; after: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'import-cost-'));
  const log = join(dir, 'loaded.log');
  writeFileSync(log, '');
  writeFileSync(join(dir, 'pools.json'), JSON.stringify({ pools: { p: { connection: { host: 'h' } } } }));
  const args = ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`];
  if (format === 'esm') args.push('--input-type=module');
  args.push('-e', program(format, entry, log));
  const { stdout } = await run(process.execPath, args, { cwd: root, env: { ...process.env, LOADED_LOG: log }, timeout: 60_000 });
  return JSON.parse(stdout) as { before: string[]; after: string[] };
}

const matching = (files: string[], patterns: Record<string, RegExp>): string[] =>
  Object.entries(patterns)
    .filter(([, re]) => files.some((f) => re.test(f)))
    .map(([name]) => name);

test.before(async () => {
  await run('node', ['scripts/build.mjs'], { cwd: root, timeout: 120_000 });
});

for (const format of ['cjs', 'esm'] as const) {
  test(`${format}: importing db-pool-otel loads no zod, YAML, admin endpoint, config-file reader or diagnosis; each loads when used`, async (t) => {
    const { before, after } = await loadedModules(format, 'src');
    t.true(
      before.some((f) => f.endsWith(`/dist/${format}/src/database-pool.js`)),
      'the check sees the build it imports',
    );
    t.deepEqual(matching(before, ROOT_LAZY), []);
    t.deepEqual(matching(after, ROOT_LAZY).sort(), ['admin-routes', 'admin-server', 'config-file', 'zod']);
  });

  test(`${format}: importing db-pool-otel/instrumentation loads no zod, pool facade, @opentelemetry/core or exporter; the exporter loads when started`, async (t) => {
    const { before, after } = await loadedModules(format, 'instrumentations');
    t.true(
      before.some((f) => f.endsWith(`/dist/${format}/instrumentations/instrumentation.js`)),
      'the check sees the build it imports',
    );
    t.deepEqual(matching(before, INSTRUMENTATION_LAZY), []);
    // The exporter brings the SDK, and the SDK brings core and semantic-conventions.
    for (const name of ['prometheus-exporter', '@opentelemetry/sdk-metrics']) t.true(matching(after, INSTRUMENTATION_LAZY).includes(name), name);
  });
}
