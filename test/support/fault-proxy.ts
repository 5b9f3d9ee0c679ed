/**
 * A loopback TCP proxy in front of a real server, for fault tests and the reliability scenarios:
 * take the server down and up again on the same port, reset connections, delay every chunk, and stall
 * *open* connections too: `stall()` stops forwarding in both directions on every connection, old and new (a hung
 * server: the kernel keeps what was sent, nothing is answered), and `resume()` lets the bytes flow
 * again. Timers it sets never keep the process alive. Loopback only.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class FaultProxy {
  #server: Server | undefined;
  readonly #pairs = new Set<Pair>();
  #stalled = false;
  #delayMs = 0;
  /** Connections accepted since start. */
  accepted = 0;
  port = 0;

  private constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  static async start(targetUrl: string): Promise<FaultProxy> {
    const u = new URL(targetUrl);
    const proxy = new FaultProxy(u.hostname || '127.0.0.1', Number(u.port || 5432));
    await proxy.up();
    return proxy;
  }

  /** `targetUrl` with host and port replaced by the proxy's. */
  url(targetUrl: string): string {
    const u = new URL(targetUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Listens (again, on the same port once one was chosen). */
  async up(): Promise<void> {
    if (this.#server) return;
    const server = createServer((client) => this.#onClient(client));
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** The server goes away: new connections are refused and every open one is reset. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.resetAll();
    if (server) {
      server.close();
      await once(server, 'close');
    }
  }

  /** Resets every open connection (RST), keeping the listener. */
  resetAll(): void {
    for (const p of this.#pairs) {
      p.client.resetAndDestroy();
      p.upstream.resetAndDestroy();
    }
    this.#pairs.clear();
  }

  /** Stops all forwarding, on open connections and new ones, until {@link resume}. */
  stall(): void {
    this.#stalled = true;
    for (const p of this.#pairs) {
      p.client.pause();
      p.upstream.pause();
    }
  }

  resume(): void {
    this.#stalled = false;
    for (const p of this.#pairs) {
      p.client.resume();
      p.upstream.resume();
    }
  }

  /** Adds this much delay to every chunk in both directions (0 to stop). */
  setDelay(ms: number): void {
    this.#delayMs = ms;
  }

  /** Client connections open now. */
  get openConnections(): number {
    return this.#pairs.size;
  }

  async close(): Promise<void> {
    await this.down();
  }

  #onClient(client: Socket): void {
    this.accepted++;
    const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
    const pair: Pair = { client, upstream };
    this.#pairs.add(pair);
    for (const s of [client, upstream]) s.on('error', () => {});
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    client.on('close', end);
    upstream.on('close', end);
    this.#pipe(client, upstream);
    this.#pipe(upstream, client);
    if (this.#stalled) {
      client.pause();
      upstream.pause();
    }
  }

  #pipe(from: Socket, to: Socket): void {
    // In order, even with a delay: a chunk is never written before the one that came before it.
    let lastAt = 0;
    from.on('data', (chunk: Buffer) => {
      if (this.#delayMs <= 0 && lastAt <= Date.now()) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      lastAt = Math.max(Date.now() + this.#delayMs, lastAt);
      setTimeout(() => to.destroyed || to.write(chunk), lastAt - Date.now()).unref();
    });
  }
}
