/**
 * A TCP proxy on 127.0.0.1 that a test can cut: every open connection is destroyed and new ones are
 * reset for a while, as a network drop between clients and PostgreSQL looks to the clients.
 *
 * @example
 *   const proxy = await startTcpProxy(5432);
 *   const url = proxy.rewrite(databaseUrl);   // the same database, through the proxy
 *   await proxy.cut(3_000);                   // connections die; for 3 s new ones are refused
 *   await proxy.close();
 */
import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** `url` with its port replaced by the proxy's (its host must be 127.0.0.1). */
  rewrite(url: string): string;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** Destroys every connection, and resets new ones for `refuseMs`; resolves when that time is over. */
  cut(refuseMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy from a free loopback port to 127.0.0.1:`targetPort`. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusingUntil = 0;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    if (Date.now() < refusingUntil) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    track(client);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    rewrite(url) {
      const u = new URL(url);
      if (u.hostname !== '127.0.0.1') throw new Error(`the proxy forwards to 127.0.0.1 only, not ${u.hostname}`);
      u.port = String(port);
      return u.toString();
    },
    get open() {
      return sockets.size;
    },
    async cut(refuseMs) {
      refusingUntil = Date.now() + refuseMs;
      // Reset, not a clean close: a dropped network gives clients no goodbye.
      for (const s of sockets) s.resetAndDestroy();
      await new Promise((resolve) => setTimeout(resolve, refuseMs));
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
