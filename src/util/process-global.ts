/**
 * One value per process, shared by the ESM and the CommonJS build when both are loaded: an app that
 * imports the pools and requires the instrumentation would otherwise see two registries, two
 * trace-context slots, two config readers.
 */

/** @internal The value kept on `globalThis` under `Symbol.for(key)`, created by `init` on first use. */
export function processGlobal<T>(key: string, init: () => T): T {
  return ((globalThis as Record<symbol, unknown>)[Symbol.for(key)] ??= init()) as T;
}
