/**
 * grafana/prometheus-alerts.yml with the real tools: `promtool check rules`, `promtool test rules`
 * (grafana/prometheus-alerts.test.yml), `amtool check-config` for the Alertmanager example; and the
 * rules' own contract: every rule unit-tested, every alert with summary, a description naming the
 * pool and a runbook anchor that README.md defines, only documented series.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import {
  allRules,
  dbIdentifiers,
  documentedSeries,
  fileOf,
  loadDashboard,
  dashboardQueries,
  recordedNames,
  RULES_FILE,
  RULES_TEST_FILE,
} from './support/grafana-dashboard.js';
import { requireTool, run } from './support/prometheus-tools.js';

const rules = allRules();
const alerts = rules.filter((r) => r.alert !== undefined);
const records = rules.filter((r) => r.record !== undefined);

test('promtool check rules accepts the rules file, lint errors fatal', async (t) => {
  const promtool = requireTool('promtool');
  const r = await run(promtool, ['check', 'rules', '--lint=all', '--lint-fatal', RULES_FILE]);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  t.is(alerts.length, 11);
  t.true(records.length >= 5);
});

test('promtool test rules: every unit test passes', async (t) => {
  const promtool = requireTool('promtool');
  // Paths in the test file are relative to it.
  const r = await run(promtool, ['test', 'rules', 'prometheus-alerts.test.yml'], { cwd: fileOf('grafana/') });
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /SUCCESS/);
});

interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts: unknown[];
}
interface TestGroup {
  name: string;
  alert_rule_test?: AlertTest[];
  promql_expr_test?: Array<{ expr: string; eval_time: string; exp_samples: unknown[] }>;
}

/** Seconds in a Prometheus duration such as 1h20m30s. */
function seconds(d: string): number {
  let s = 0;
  for (const m of d.matchAll(/(\d+)(ms|h|m|s|d)/g)) s += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return s;
}

test('every alert is tested firing after its for, silent before it, and silent just below its threshold; every record has a value test', (t) => {
  const file = parseYaml(readFileSync(RULES_TEST_FILE, 'utf8')) as { rule_files: string[]; tests: TestGroup[] };
  t.deepEqual(file.rule_files, ['prometheus-alerts.yml']);
  for (const rule of alerts) {
    const name = rule.alert!;
    const forSeconds = seconds(rule.for ?? '0s');
    t.true(forSeconds > 0, `${name} has a for:`);
    const groups = file.tests.filter((g) => g.alert_rule_test?.some((a) => a.alertname === name));
    // A group where it fires, and is silent one evaluation earlier (the for has not elapsed).
    const firesAfterFor = groups.some((g) => {
      const checks = g.alert_rule_test!.filter((a) => a.alertname === name);
      const firing = checks.filter((a) => a.exp_alerts.length > 0).map((a) => seconds(a.eval_time));
      const silent = checks.filter((a) => a.exp_alerts.length === 0).map((a) => seconds(a.eval_time));
      return firing.some((f) => f >= forSeconds && silent.some((s) => s < f && s > f - forSeconds));
    });
    t.true(firesAfterFor, `${name}: a test where it fires and is silent before its for (${rule.for}) has elapsed`);
    // A group where it never fires, evaluated after its for: the value at or below the threshold.
    const silentBelow = groups.some((g) => {
      const checks = g.alert_rule_test!.filter((a) => a.alertname === name);
      return checks.every((a) => a.exp_alerts.length === 0) && checks.some((a) => seconds(a.eval_time) >= forSeconds);
    });
    t.true(silentBelow, `${name}: a test where it stays silent past its for`);
  }
  const exprTests = file.tests.flatMap((g) => g.promql_expr_test ?? []);
  for (const rule of records) {
    t.true(
      exprTests.some((e) => e.expr.trim() === rule.record && e.exp_samples.length > 0),
      `${rule.record}: a promql_expr_test of its value`,
    );
  }
});

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

test('every alert has a severity, a summary, a description naming $labels.pool, and a runbook in README.md', (t) => {
  const doc = readFileSync(fileOf('README.md'), 'utf8');
  const sections = new Map<string, string>();
  const parts = doc.split(/^(#{2,4} .*)$/m);
  for (let i = 1; i < parts.length; i += 2) sections.set(githubAnchor(parts[i]!.replace(/^#+ /, '')), parts[i + 1] ?? '');
  for (const rule of alerts) {
    const name = rule.alert!;
    t.true(['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${name}: severity`);
    const a = rule.annotations ?? {};
    t.truthy(a.summary, `${name}: summary`);
    t.regex(a.description ?? '', /\{\{ \$labels\.pool \}\}/, `${name}: description names the pool`);
    const anchor = `runbook-${name.toLowerCase()}`;
    t.is(a.runbook_url, `https://github.com/OWNER/db-pool-otel#${anchor}`, `${name}: runbook_url`);
    const section = sections.get(anchor);
    t.truthy(section, `README.md has a heading giving #${anchor}`);
    t.regex(section ?? '', /`db-pool (health|pools|metrics|slow-queries|connections|diagnose|restart|cleanup|resize)\b/, `${name}: its runbook names a db-pool command`);
  }
});

test('the rules read only the series and labels the README documents, and events the core publishes', (t) => {
  const { series, labels } = documentedSeries();
  t.true(series.size >= 20, `documented series: ${series.size}`);
  const recordNames = new Set(records.map((r) => r.record!));
  for (const rule of rules) {
    const name = rule.record ?? rule.alert!;
    for (const id of dbIdentifiers(rule.expr)) t.true(series.has(id) || labels.has(id), `${name}: ${id} is a documented series or label`);
    for (const rec of recordedNames(rule.expr)) t.true(recordNames.has(rec), `${name}: ${rec} is recorded in the file`);
  }
  // db_pool_event values matched by the rules are events src/channels.ts declares.
  const channels = readFileSync(fileOf('src/channels.ts'), 'utf8');
  const eventUnion = channels.split('readonly event:')[1]?.split(';')[0] ?? '';
  for (const rule of rules) {
    for (const m of rule.expr.matchAll(/db_pool_event\s*(?:=~|=|!~|!=)\s*"([^"]*)"/g)) {
      for (const value of m[1]!.split('|')) t.true(eventUnion.includes(`'${value}'`), `${rule.alert ?? rule.record}: event ${value} is published by the core`);
    }
  }
});

test('every recording rule is read by an alert or by the dashboard', (t) => {
  const used = new Set<string>();
  for (const rule of alerts) for (const n of recordedNames(rule.expr)) used.add(n);
  for (const q of dashboardQueries(loadDashboard())) for (const n of recordedNames(q.expr)) used.add(n);
  for (const rule of records) {
    // The building blocks of instance_pool:db_pool_up:bool count through it.
    const readByRecord = records.some((r) => r !== rule && recordedNames(r.expr).includes(rule.record!) && used.has(r.record!));
    t.true(used.has(rule.record!) || readByRecord, `${rule.record} is used`);
  }
});

test('amtool accepts the example Alertmanager configuration', async (t) => {
  const amtool = requireTool('amtool');
  const r = await run(amtool, ['check-config', fileOf('grafana/alertmanager.yml')]);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /SUCCESS/);
  t.regex(r.stdout, /2 receivers/);
});
