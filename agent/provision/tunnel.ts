/**
 * A local port that reaches a port on a host's loopback through its SSH connection: how the
 * provisioner talks to the PostgreSQL it installed on a `[database]` host without opening the host's
 * firewall to the provisioner's machine. Each accepted connection gets its own SSH channel.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { HostSession } from './ssh.ts';

export interface Tunnel {
  /** The local port, on 127.0.0.1. */
  port: number;
  close(): Promise<void>;
}

/**
 * @example
 *   const t = await openTunnel(session, 5432);
 *   const pool = new pg.Pool({ host: '127.0.0.1', port: t.port, ... });
 */
export async function openTunnel(session: HostSession, remotePort: number): Promise<Tunnel> {
  const sockets = new Set<Socket>();
  const server = createServer((local) => {
    sockets.add(local);
    local.on('close', () => sockets.delete(local));
    local.on('error', () => local.destroy());
    session.forward(remotePort).then(
      (remote) => {
        remote.on('error', () => local.destroy());
        local.on('close', () => remote.destroy());
        remote.on('close', () => local.destroy());
        local.pipe(remote).pipe(local);
      },
      () => local.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
