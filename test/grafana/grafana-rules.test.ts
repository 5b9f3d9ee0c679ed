/**
 * grafana/prometheus-alerts.yml with the real tools: `promtool check rules`, `promtool test rules`
 * (grafana/prometheus-alerts.test.yml), `amtool check-config` for the Alertmanager example; and the
 * rules' own contract: every rule unit-tested, every alert with summary, a description naming the
 * pool and a runbook link to its section of docs/runbooks.md (on the repository named in
 * package.json), only documented series.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import {
  allRules,
  dbIdentifiers,
  documentedSeries,
  fileOf,
  loadDashboard,
  dashboardQueries,
  isServerLevel,
  recordedNames,
  RULES_FILE,
  RULES_TEST_FILE,
} from '../support/grafana-dashboard.js';
import { requireTool, run, withTools } from '../support/prometheus-tools.js';

const rules = allRules();
const alerts = rules.filter((r) => r.alert !== undefined);
const records = rules.filter((r) => r.record !== undefined);

withTools(test, ['promtool'])('promtool check rules accepts the rules file, lint errors fatal', async (t) => {
  const promtool = requireTool('promtool');
  const r = await run(promtool, ['check', 'rules', '--lint=all', '--lint-fatal', RULES_FILE]);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  // 11 per pool, 2 per server for the fleet's connection budget.
  t.is(alerts.length, 13);
  t.true(records.length >= 5);
});

withTools(test, ['promtool'])('promtool test rules: every unit test passes', async (t) => {
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

/** Where the shipped files link: docs/ of the repository package.json names, on its main branch. */
function docsBase(): string {
  const pkg = JSON.parse(readFileSync(fileOf('package.json'), 'utf8')) as { repository?: { url?: string } | string };
  const url = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  const repo = /^(?:git\+)?(https:\/\/github\.com\/[^/]+\/[^/]+?)(?:\.git)?$/.exec(url ?? '')?.[1];
  if (repo === undefined) throw new Error(`package.json has no GitHub repository URL: ${String(url)}`);
  return `${repo}/blob/main/docs/`;
}

test('every alert has a severity, a summary, a description naming $labels.pool, and a runbook in docs/runbooks.md', (t) => {
  const doc = readFileSync(fileOf('docs/runbooks.md'), 'utf8');
  const sections = new Map<string, string>();
  const parts = doc.split(/^(#{2,4} .*)$/m);
  for (let i = 1; i < parts.length; i += 2) sections.set(githubAnchor(parts[i]!.replace(/^#+ /, '')), parts[i + 1] ?? '');
  for (const rule of alerts) {
    const name = rule.alert!;
    t.true(['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${name}: severity`);
    const a = rule.annotations ?? {};
    t.truthy(a.summary, `${name}: summary`);
    // Per-server alerts (they read only server: recordings, summed over every pool) name the server instead.
    const perServer = recordedNames(rule.expr).length > 0 && recordedNames(rule.expr).every(isServerLevel);
    if (perServer) t.regex(a.description ?? '', /\{\{ \$labels\.server_address \}\}:\{\{ \$labels\.server_port \}\}/, `${name}: description names the server`);
    else t.regex(a.description ?? '', /\{\{ \$labels\.pool \}\}/, `${name}: description names the pool`);
    const anchor = `runbook-${name.toLowerCase()}`;
    t.is(a.runbook_url, `${docsBase()}runbooks.md#${anchor}`, `${name}: runbook_url`);
    const section = sections.get(anchor);
    t.truthy(section, `docs/runbooks.md has a heading giving #${anchor}`);
    t.regex(
      section ?? '',
      /`db-pool (health|pools|metrics|slow-queries|connections|diagnose|restart|cleanup|resize|budget)\b/,
      `${name}: its runbook names a db-pool command`,
    );
  }
});

test('every link to the docs in the rules, their tests and the dashboard goes to a page of docs/ and, with a fragment, to one of its headings', (t) => {
  const base = docsBase();
  const files = ['grafana/prometheus-alerts.yml', 'grafana/prometheus-alerts.test.yml', 'grafana/db-pool-dashboard.json'];
  let links = 0;
  for (const file of files) {
    const text = readFileSync(fileOf(file), 'utf8');
    t.false(/github\.com\/OWNER|OWNER\/db-pool-otel/.test(text), `${file}: no OWNER placeholder`);
    for (const m of text.matchAll(/https?:\/\/[^\s"'`)]+/g)) {
      const url = m[0].replace(/[.,]$/, '');
      if (!url.startsWith('https://github.com/')) continue;
      links++;
      t.true(url.startsWith(base), `${file}: ${url} is under ${base}`);
      const [page, fragment] = url.slice(base.length).split('#') as [string, string | undefined];
      const path = fileOf(`docs/${page}`);
      t.true(existsSync(path), `${file}: ${url}: docs/${page} exists`);
      if (fragment !== undefined && existsSync(path)) {
        const anchors = new Set([...readFileSync(path, 'utf8').matchAll(/^#{1,6} (.*)$/gm)].map((h) => githubAnchor(h[1]!)));
        t.true(anchors.has(fragment), `${file}: ${url}: docs/${page} has a heading #${fragment}`);
      }
    }
  }
  // 13 alerts in the rules and in their tests' expected annotations, and the dashboard's descriptions and link.
  t.true(links >= 13 + 13 + 20, `links: ${links}`);
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

withTools(test, ['amtool'])('amtool accepts the example Alertmanager configuration', async (t) => {
  const amtool = requireTool('amtool');
  const r = await run(amtool, ['check-config', fileOf('grafana/alertmanager.yml')]);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /SUCCESS/);
  t.regex(r.stdout, /2 receivers/);
});
