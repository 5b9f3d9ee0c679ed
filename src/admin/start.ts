/**
 * `startAdminServer` as the package root and `DatabasePool` expose it: the endpoint's modules (HTTP
 * server, routes, their zod schemas) are imported on the first start, not when the package is
 * imported (issue 19, "cheap to import"). Starting is asynchronous anyway, so a dynamic `import()`
 * does it, in both builds, as config files load `yaml`.
 */
import type { AdminServer, AdminServerOptions } from './admin-server.js';
import type { AdminPools } from './pools.js';

export { ADMIN_SERVER_DEFAULTS } from './protocol.js';

/**
 * Starts the admin endpoint over `db` (see `admin-server.ts` for what it serves and how it is guarded).
 *
 * @example
 * const admin = await startAdminServer(db, { port: 9000, token: process.env.DB_POOL_ADMIN_TOKEN });
 * // db-pool --url http://127.0.0.1:9000 pools
 * await admin.close();
 */
export async function startAdminServer(db: AdminPools, options: AdminServerOptions = {}): Promise<AdminServer> {
  const endpoint = await import('./admin-server.js');
  return endpoint.startAdminServer(db, options);
}
