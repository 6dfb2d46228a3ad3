/** Every workload and contender the benchmark knows, by the names the command line uses. */
import type { ContenderFactory } from './contenders/contender.ts';
import { graphileWorker } from './contenders/graphile-worker.ts';
import { miniPaas, miniPaasSql, miniPaasSqlListen } from './contenders/minipaas.ts';
import { miniPaasStreams } from './contenders/minipaas-streams.ts';
import { compat, original } from './contenders/original.ts';
import { pgBoss } from './contenders/pg-boss.ts';
import { bloat } from './workloads/bloat.ts';
import { claimBig, claimSmall } from './workloads/claim.ts';
import { drain } from './workloads/drain.ts';
import { bulkEnqueue, singleEnqueue } from './workloads/enqueue.ts';
import { latency } from './workloads/latency.ts';
import {
  streamGroup,
  streamLatency,
  streamPublishBatch,
  streamPublishSingle,
  streamRead,
  type StreamWorkload,
} from './workloads/streams.ts';
import type { QueueWorkload } from './workloads/workload.ts';

/** In run order. */
export const QUEUE_WORKLOADS: QueueWorkload[] = [bulkEnqueue, singleEnqueue, drain, latency, claimSmall, claimBig, bloat];
export const STREAM_WORKLOADS: StreamWorkload[] = [
  streamPublishBatch,
  streamPublishSingle,
  streamRead,
  streamGroup,
  streamLatency,
];
export const CONTENDERS: ContenderFactory[] = [miniPaas, miniPaasSql, miniPaasSqlListen, graphileWorker, pgBoss, original, compat];
export const STREAM_SUBJECTS = [miniPaasStreams];
