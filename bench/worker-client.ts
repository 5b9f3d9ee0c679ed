/** The runner's side of a contender's worker process (bench/worker.ts): one request at a time over IPC. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkerRequest } from './worker.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface WorkerOptions {
  /** How it is shown in tables (default: the contender's name). */
  label?: string;
  /** Directory of the bench/ to run (another checkout's, for bench/ab.ts); default this one. */
  benchDir?: string;
  /** Write a V8 CPU profile of the worker (node --cpu-prof) into this directory. */
  cpuProfileDir?: string;
  /** More node / V8 flags for the worker. */
  nodeFlags?: string[];
}

export interface ClosedWorker {
  totalOps: number;
  spans?: { exported: number; dropped: number; bytes?: number };
}

export class Worker {
  readonly label: string;
  readonly #child: ChildProcess;
  #pending: { resolve(v: unknown): void; reject(e: Error): void } | undefined;
  #exited = false;

  constructor(
    readonly name: string,
    options: WorkerOptions = {},
  ) {
    this.label = options.label ?? name;
    const benchDir = options.benchDir ?? BENCH_DIR;
    const execArgv = ['--import', 'tsx', '--expose-gc'];
    if (options.cpuProfileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
    if (options.nodeFlags) execArgv.push(...options.nodeFlags);
    this.#child = fork(path.join(benchDir, 'worker.ts'), [], { cwd: path.dirname(benchDir), execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (m: { ok: boolean; value?: unknown; error?: string }) => {
      const p = this.#pending;
      this.#pending = undefined;
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(`${this.label}: ${m.error}`));
    });
    this.#child.on('exit', (code) => {
      this.#exited = true;
      this.#pending?.reject(new Error(`${this.label}: worker exited (${code})`));
    });
  }

  /** The worker's process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  request<T>(m: WorkerRequest): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(`${this.label}: worker has exited`));
    return new Promise<T>((resolve, reject) => {
      this.#pending = { resolve: resolve as (v: unknown) => void, reject };
      this.#child.send(m);
    });
  }

  /** Closes the contender (its pools, its SDK) and waits for the process to exit. */
  async close(): Promise<ClosedWorker> {
    const exited = new Promise<void>((resolve) => (this.#exited ? resolve() : this.#child.once('exit', () => resolve())));
    const r = await this.request<ClosedWorker>({ t: 'close' });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    return r;
  }

  kill(): void {
    if (!this.#exited) this.#child.kill('SIGKILL');
  }
}
