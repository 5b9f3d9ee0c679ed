/**
 * Everything a process shows, captured for the secret and literal searches: console output,
 * stdout/stderr writes, diagnostics-channel messages, spans (in memory) and log lines handed to
 * loggers. `texts()` returns every captured item as text.
 */
import dc from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { CHANNELS } from '../../src/index.js';

/** Renders anything the way a log, a dump or a response could show it. */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  let json = '';
  try {
    json = JSON.stringify(value) ?? '';
  } catch {
    json = '';
  }
  // What console.log (deeper) and JSON.stringify show; stacks and causes of errors too.
  const parts = [json, inspect(value, { depth: 10 })];
  if (value instanceof Error) {
    parts.push(String(value.stack));
    let cause: unknown = value.cause;
    for (let i = 0; i < 5 && cause !== undefined; i++) {
      parts.push(render(cause));
      cause = (cause as { cause?: unknown } | null)?.cause;
    }
  }
  return parts.join('\n');
}

export class Capture {
  readonly items: { where: string; text: string }[] = [];
  #restore: (() => void)[] = [];

  add(where: string, value: unknown): void {
    this.items.push({ where, text: render(value) });
  }

  /** A logger (warn / info / error / log) that records what it is given. */
  logger(where: string): Pick<Console, 'warn' | 'info' | 'error' | 'log'> {
    const rec = (...args: unknown[]) => this.add(where, args.map((a) => render(a)).join(' '));
    return { warn: rec, info: rec, error: rec, log: rec };
  }

  /** Records console.* and process.stdout / stderr writes (not passed through) until stop(). */
  captureConsole(): void {
    const c = console as unknown as Record<string, (...a: unknown[]) => void>;
    for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
      const original = c[m]!;
      c[m] = (...args: unknown[]) => this.add(`console.${m}`, args.map((a) => render(a)).join(' '));
      this.#restore.push(() => (c[m] = original));
    }
    for (const stream of [process.stdout, process.stderr]) {
      const original = stream.write;
      stream.write = ((chunk: unknown, ...rest: unknown[]) => {
        this.add(stream === process.stdout ? 'stdout' : 'stderr', typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
        const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
        cb?.();
        return true;
      }) as typeof stream.write;
      this.#restore.push(() => (stream.write = original));
    }
  }

  /**
   * Records every message published on the db-pool:* channels (tracing channels: all five events).
   * Node adds `result` to a tracing message: the live object the operation returned (a connection,
   * a loan, a pg result), which holds driver state by nature; the message's own fields are recorded.
   */
  captureChannels(): void {
    const fields = (m: unknown) => {
      if (m === null || typeof m !== 'object') return m;
      const { result: _result, ...rest } = m as Record<string, unknown>;
      return rest;
    };
    for (const [key, name] of Object.entries(CHANNELS)) {
      if (key === 'acquire' || key === 'query' || key === 'connect') {
        const ch = dc.tracingChannel(name);
        const handlers = Object.fromEntries(
          ['start', 'end', 'asyncStart', 'asyncEnd', 'error'].map((e) => [e, (m: unknown) => this.add(`${name}:${e}`, fields(m))]),
        );
        ch.subscribe(handlers as never);
        this.#restore.push(() => ch.unsubscribe(handlers as never));
      } else {
        const listener = (m: unknown) => this.add(name, m);
        dc.subscribe(name, listener);
        this.#restore.push(() => dc.unsubscribe(name, listener));
      }
    }
  }

  stop(): void {
    for (const r of this.#restore.splice(0).reverse()) r();
  }

  /** Items containing `needle` (raw or URL-encoded). */
  find(needle: string): { where: string; text: string }[] {
    const forms = [...new Set([needle, encodeURIComponent(needle)])];
    return this.items.filter((i) => forms.some((f) => i.text.includes(f)));
  }

  get bytes(): number {
    return this.items.reduce((n, i) => n + i.text.length, 0);
  }
}
