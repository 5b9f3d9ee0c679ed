/**
 * The import rules of the house (`npm run lint`, which CI runs). One rule per "never":
 * - src/ (the core) never imports OpenTelemetry;
 * - the CLI talks to the admin endpoint only: it imports its protocol and its own files;
 * - the instrumentation reaches the core through the public entry and the internal seam
 *   (src/internal.ts) only;
 * - layers: util <- sql, stats, config <- pool <- routing, ops <- adapters, admin, alerts <- the
 *   facade (database-pool.ts) <- the entry (index.ts); a lower layer never imports a higher one, and
 *   only the entry imports the facade (plug-ins reach it through interfaces they own);
 * - no import circles (type-only imports count: swc reads them).
 * scripts/check-structure.mjs also guards the number of modules read, since a parser that cannot
 * read this tree reports "no violations" on 0 modules.
 */
module.exports = {
  forbidden: [
    {
      name: 'core-never-imports-opentelemetry',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '(^|/)node_modules/@opentelemetry/|^@opentelemetry/' },
    },
    {
      name: 'cli-imports-only-the-admin-protocol',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/', pathNot: ['^src/cli/', '^src/admin/protocol\\.ts$'] },
    },
    {
      name: 'instrumentation-through-the-seams-only',
      severity: 'error',
      from: { path: '^instrumentations/' },
      to: { path: '^src/', pathNot: ['^src/index\\.ts$', '^src/internal\\.ts$'] },
    },
    {
      name: 'only-the-entry-imports-the-facade',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/index\\.ts$' },
      to: { path: '^src/(database-pool|index)\\.ts$' },
    },
    {
      name: 'util-imports-nothing-of-the-core',
      severity: 'error',
      from: { path: '^src/util/' },
      to: { path: '^src/', pathNot: '^src/util/' },
    },
    {
      name: 'sql-stats-config-never-import-pools',
      severity: 'error',
      from: { path: '^src/(sql|stats|config)/' },
      to: { path: '^src/(pool|routing|ops|adapters|admin|alerts|cli)/' },
    },
    {
      name: 'the-pool-never-imports-what-builds-on-it',
      severity: 'error',
      from: { path: '^src/pool/' },
      to: { path: '^src/(routing|ops|adapters|admin|alerts|cli)/' },
    },
    {
      name: 'routing-and-ops-never-import-plug-ins',
      severity: 'error',
      from: { path: '^src/(routing|ops)/' },
      to: { path: '^src/(adapters|admin|alerts|cli)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
