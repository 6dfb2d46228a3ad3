/**
 * MiniPaaS streams through their SQL API: `mp.publish` / `mp.publish_batch`, a single reader on
 * `mp.read` (offset kept by the reader), and consumer-group members on `mp.poll` + `mp.commit`.
 * Idle consumers sleep on LISTEN `mp_stream_<stream>` and wake on publish, as the platform's do.
 */
import pg from 'pg';
import { migrate } from '../../sql/migrate.ts';
import { benchPool, chunks, deal, type Factory, type JobPayload, type Subject, type Workers } from './contender.ts';
import { Wakeups } from './wakeups.ts';

const STREAM = 'bench';
const GROUP = 'bench_group';
/** Events per `mp.read` / `mp.poll` call. */
export const READ_MAX = 1000;
export const POLL_MAX = 250;

/** A stream implementation under test (only MiniPaaS has one). */
export interface StreamSubject extends Subject {
  publishBatch(payloads: JobPayload[], batchSize: number): Promise<void>;
  publishSingle(payloads: JobPayload[], clients: number): Promise<void>;
  publishOne(payload: JobPayload): Promise<void>;
  /** One reader from the start of the stream; `handler` gets every event in order. */
  startReader(handler: (event: JobPayload, pos: number) => void): Promise<Workers>;
  /** `members` consumers of one group created at the start of the stream. */
  startGroup(members: number, handler: (event: JobPayload, pos: number) => void): Promise<Workers>;
  /** The group's committed offset (every pos up to it is processed). */
  groupCommitted(): Promise<number>;
}

/** A consumer loop: fetch, handle, and sleep on NOTIFY when a fetch comes back short. */
async function startLoops(
  url: string,
  count: number,
  fetch: (client: pg.Client, member: string) => Promise<{ rows: Array<{ pos: string; payload: JobPayload }>; full: boolean }>,
  handler: (event: JobPayload, pos: number) => void,
  done: (client: pg.Client, lastPos: string) => Promise<void>,
): Promise<Workers> {
  let stopped = false;
  const wakeups = new Wakeups();
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  listener.on('notification', wakeups.wakeAll);
  await listener.query(`listen ${pg.escapeIdentifier(`mp_stream_${STREAM}`)}`);
  const clients = await Promise.all(
    Array.from({ length: count }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  const loop = async (client: pg.Client, member: string): Promise<void> => {
    while (!stopped) {
      const seen = wakeups.seen;
      const { rows, full } = await fetch(client, member);
      for (const r of rows) handler(r.payload, Number(r.pos));
      if (rows.length > 0) await done(client, rows[rows.length - 1]!.pos);
      if (!full && !stopped) await wakeups.sleep(seen, 1000);
    }
  };
  const running = clients.map((c, i) => loop(c, `member-${i}`));
  return {
    stop: async () => {
      stopped = true;
      wakeups.wakeAll();
      try {
        await Promise.all(running);
      } finally {
        await Promise.all([...clients, listener].map((c) => c.end()));
      }
    },
  };
}

class MiniPaasStreams implements StreamSubject {
  readonly name = 'minipaas';
  readonly settings = `mp.read max ${READ_MAX}; group members mp.poll max ${POLL_MAX} + mp.commit; LISTEN wake-ups`;
  private url = '';
  private pool?: pg.Pool;

  async setup(url: string): Promise<void> {
    this.url = url;
    await migrate({ connectionString: url });
    this.pool = benchPool(url, 6);
    await this.pool.query(`select mp.stream_create($1)`, [STREAM]);
  }

  async publishBatch(payloads: JobPayload[], batchSize: number): Promise<void> {
    for (const batch of chunks(payloads, batchSize)) {
      await this.pool!.query({
        name: 'mp_publish_batch',
        text: `select count(*) from mp.publish_batch($1, $2::jsonb)`,
        values: [STREAM, JSON.stringify(batch)],
      });
    }
  }

  async publishSingle(payloads: JobPayload[], clients: number): Promise<void> {
    await Promise.all(
      deal(payloads, clients).map(async (mine) => {
        const c = await this.pool!.connect();
        try {
          for (const p of mine) await c.query({ name: 'mp_publish', text: `select mp.publish($1, $2::jsonb)`, values: [STREAM, p] });
        } finally {
          c.release();
        }
      }),
    );
  }

  async publishOne(payload: JobPayload): Promise<void> {
    await this.pool!.query({ name: 'mp_publish', text: `select mp.publish($1, $2::jsonb)`, values: [STREAM, payload] });
  }

  startReader(handler: (event: JobPayload, pos: number) => void): Promise<Workers> {
    let after = '0';
    return startLoops(
      this.url,
      1,
      async (client) => {
        const { rows } = await client.query<{ pos: string; payload: JobPayload }>({
          name: 'mp_read',
          text: `select pos, payload from mp.read($1, $2, $3)`,
          values: [STREAM, after, READ_MAX],
        });
        return { rows, full: rows.length === READ_MAX };
      },
      handler,
      async (_client, lastPos) => {
        after = lastPos;
      },
    );
  }

  async startGroup(members: number, handler: (event: JobPayload, pos: number) => void): Promise<Workers> {
    await this.pool!.query(`select mp.group_create($1, $2, 'earliest')`, [STREAM, GROUP]);
    return startLoops(
      this.url,
      members,
      async (client, member) => {
        const { rows } = await client.query<{ pos: string; payload: JobPayload }>({
          name: 'mp_poll',
          text: `select pos, payload from mp.poll($1, $2, $3, $4)`,
          values: [STREAM, GROUP, member, POLL_MAX],
        });
        return { rows, full: rows.length === POLL_MAX };
      },
      handler,
      async (client, lastPos) => {
        await client.query({ name: 'mp_commit', text: `select mp.commit($1, $2, $3)`, values: [STREAM, GROUP, lastPos] });
      },
    );
  }

  async groupCommitted(): Promise<number> {
    const { rows } = await this.pool!.query<{ committed: string }>(
      `select g.committed from mp.stream_groups g join mp.streams s on s.id = g.stream_id where s.name = $1 and g.grp = $2`,
      [STREAM, GROUP],
    );
    return Number(rows[0]?.committed ?? 0);
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }
}

export const miniPaasStreams: Factory<StreamSubject> = {
  name: 'minipaas',
  create: () => new MiniPaasStreams(),
};
