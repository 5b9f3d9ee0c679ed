/**
 * Config files as the package root and `DatabasePool` read them: `config-file.ts` (reading,
 * parsing, interpolation, ~500 lines) is imported on the first file read, not when the package is
 * imported (issue 19, "cheap to import"). Reading a file is asynchronous anyway (the YAML parser is
 * imported the same way), so a dynamic `import()` does it in both builds.
 */
import type { ConfigFileContents } from './config-file.js';
import type { ResolvedPoolConfig } from './config.js';

/**
 * Reads and interpolates a config file. Throws {@link InvalidConfigError} for a missing, unreadable,
 * oversized, unparsable or too deeply nested file, a missing `pools` map, an invalid pool id, a
 * malformed `${...}`, or an unset variable without default. With `only`, just that pool is
 * interpolated; the others are returned as parsed (frozen: the parse is shared between loads).
 *
 * @example
 * // pools.yaml:  pools: { main: { connection: { connectionString: "${DATABASE_URL}" }, max: 20 } }
 * const { pools } = await loadConfigFile('pools.yaml');
 */
export async function loadConfigFile(file: string, options: { env?: NodeJS.ProcessEnv; only?: string } = {}): Promise<ConfigFileContents> {
  const configFile = await import('./config-file.js');
  return configFile.loadConfigFile(file, options);
}

/** `createPoolFromConfig`: one pool's entry of the config file, validated (INVALID_CONFIG names what is missing). */
export async function poolFromConfigFile(file: string | undefined, poolId: string): Promise<ResolvedPoolConfig> {
  const configFile = await import('./config-file.js');
  return configFile.poolFromConfigFile(file, poolId);
}
