/**
 * The README and the manual in docs/: every relative link points at a file that exists and, with a
 * #fragment, at a heading of that file (GitHub's anchor rules); every page of docs/ is reachable
 * from the README; the README stays short enough to read.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pages = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
/** Decision records: reached from docs/architecture.md, checked like the rest. */
const decisions = readdirSync(join(ROOT, 'docs', 'decisions'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `docs/decisions/${f}`);

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\- _]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Relative links outside code: [text](target). */
function links(markdown: string): string[] {
  const found: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    for (const m of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (!/^[a-z]+:/i.test(target)) found.push(target);
    }
  }
  return found;
}

test('every relative link in README.md and docs/ resolves to a file and, with a fragment, to a heading', (t) => {
  const dead: string[] = [];
  for (const page of [...pages, ...decisions]) {
    const text = readFileSync(join(ROOT, page), 'utf8');
    for (const link of links(text)) {
      const [path, fragment] = link.split('#') as [string, string | undefined];
      const file = path === '' ? join(ROOT, page) : resolve(ROOT, dirname(page), decodeURIComponent(path));
      if (!existsSync(file)) {
        dead.push(`${page}: ${link} (no such file)`);
        continue;
      }
      if (fragment && statSync(file).isFile() && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(fragment)) {
        dead.push(`${page}: ${link} (no heading #${fragment} in ${relative(ROOT, file)})`);
      }
    }
  }
  t.deepEqual(dead, []);
});

test('every page of the manual is linked from the README, and the README stays short', (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const linked = new Set(links(readme).map((l) => l.split('#')[0]));
  for (const page of pages.filter((p) => p !== 'README.md')) t.true(linked.has(page), `${page} is linked from README.md`);
  t.true(readme.split('\n').length <= 400, `README.md has ${readme.split('\n').length} lines`);
  const architecture = new Set(links(readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8')).map((l) => `docs/${l.split('#')[0]}`));
  for (const page of decisions) t.true(architecture.has(page), `${page} is linked from docs/architecture.md`);
});

test('the README starts with what the library is, then exactly two commands: the demo and the tests', (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const shell = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
  t.deepEqual(shell.slice(0, 2), ['npm install && npm start', 'npm test']);
  t.regex(readme.split('\n').slice(0, 8).join(' '), /PostgreSQL connection-pool manager/);
});
