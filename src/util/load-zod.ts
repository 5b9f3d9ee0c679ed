/**
 * zod, loaded the first time something is validated rather than when the package is imported: it is
 * about 95 modules, 100 ms and 7 MB, and an application that only runs pools from a config it wrote
 * should not pay that on start-up (issue 19, "cheap to import"). Modules that validate import only
 * zod's types and build their schemas on first use through {@link zod}.
 *
 * Validation is synchronous, so this cannot be `import()`. The CommonJS build requires zod; the ES
 * module build (no `require`) requires zod's CommonJS build from this file's location: both builds
 * compile this source and `import.meta` is not allowed in the CommonJS one, hence the stack frame.
 */
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Zod from 'zod';

let loaded: typeof Zod | undefined;

/** zod's `z` namespace, loaded once per process on the first call. */
export function zod(): typeof Zod.z {
  loaded ??= (typeof require === 'function' ? require('zod') : createRequire(thisFile())('zod')) as typeof Zod;
  return loaded.z;
}

/** This module's file in the ES module build: the first frame of a stack made here. */
function thisFile(): string {
  const original = Error.prepareStackTrace;
  let name: string | null | undefined;
  try {
    Error.prepareStackTrace = (_err, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    name = Array.isArray(frames) ? frames[0]?.getFileName() : undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
  if (name?.startsWith('file:')) return fileURLToPath(name);
  if (name && isAbsolute(name)) return name;
  // No file name (a bundle, an eval): resolve from the application's directory, as `import 'zod'` would there.
  return `${process.cwd()}/index.js`;
}

/**
 * A value made on first use and kept: how the validators hold their schemas, so that building them
 * (and loading zod) happens on the first validation.
 */
export function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  let made = false;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value as T;
  };
}
