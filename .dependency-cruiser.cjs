/**
 * The import rules of the house (`npm run lint`, which CI runs). One rule per "never":
 * - src/ (the core) never imports OpenTelemetry;
 * - the CLI talks to the admin endpoint only: it imports its protocol and its own files;
 * - the instrumentation reaches the core through the public entry and the internal seam only;
 * - no import circles (type-only imports count: swc reads them).
 * Violations that exist today are listed in .dependency-cruiser-known-violations.json (the re-house
 * of issue 17 removes them); a new one fails. scripts/check-structure.mjs also guards the number of
 * modules read, since a parser that cannot read this tree reports "no violations" on 0 modules.
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
      to: { path: '^src/', pathNot: ['^src/index\\.ts$', '^src/trace-context\\.ts$'] },
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
