/**
 * Turning {@link ScenarioResult}s into output: assertions in ava tests, and the Markdown table of
 * `npm run reliability`.
 */
import { formatCodes, type ScenarioResult } from './outcomes.js';

/** The part of ava's ExecutionContext used here (kept structural so the runner needs no ava). */
export interface Asserter {
  log(...values: unknown[]): void;
  true(actual: boolean, message?: string): unknown;
}

/** Logs a scenario's figures and asserts each of its checks. */
export function assertScenario(t: Asserter, r: ScenarioResult): void {
  t.log(
    `${r.name}: ${r.requests} requests, ${r.served} served, rejected ${formatCodes(r.rejected)}, ${r.hung} hung, ${r.leaked} leaked` +
      `${r.recoverMs === undefined ? '' : `, recovered in ${Math.round(r.recoverMs)} ms`} (${(r.durationMs / 1000).toFixed(1)} s)`,
  );
  const figures = Object.entries(r.figures)
    .map(([k, v]) => `${k} ${v}`)
    .join('; ');
  if (figures) t.log(`  ${figures}`);
  for (const c of r.checks) t.true(c.ok, `${r.name}: ${c.name} — ${c.detail}`);
  t.true(r.hung === 0, `${r.name}: ${r.hung} calls hung`);
  t.true(r.leaked === 0, `${r.name}: ${r.leaked} connections leaked`);
}

function cell(s: string | number): string {
  return String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The summary table, one row per scenario. */
export function summaryTable(results: readonly ScenarioResult[]): string {
  const head = '| scenario | requests | served | rejected (by code) | hung | leaked | time to recover | checks |\n|---|---:|---:|---|---:|---:|---:|---|';
  const rows = results.map((r) => {
    const failed = r.checks.filter((c) => !c.ok).length;
    const recover = r.recoverMs === undefined ? '—' : `${(r.recoverMs / 1000).toFixed(2)} s`;
    return `| ${cell(r.name)} | ${r.requests} | ${r.served} | ${cell(formatCodes(r.rejected))} | ${r.hung} | ${r.leaked} | ${recover} | ${failed === 0 ? `${r.checks.length} passed` : `**${failed} of ${r.checks.length} failed**`} |`;
  });
  return [head, ...rows].join('\n');
}

/** Per scenario: its further figures and every check with its detail. */
export function detailSections(results: readonly ScenarioResult[]): string {
  return results
    .map((r) => {
      const figures = Object.entries(r.figures)
        .map(([k, v]) => `${k}: ${v}`)
        .join('; ');
      const checks = r.checks.map((c) => `- ${c.ok ? 'ok' : 'FAILED'} — ${c.name}${c.detail ? ` (${c.detail})` : ''}`).join('\n');
      return `### ${r.name} (${(r.durationMs / 1000).toFixed(1)} s)\n\n${figures ? `${figures}\n\n` : ''}${checks}`;
    })
    .join('\n\n');
}
