/**
 * The failure alert of a cron job: one JSON POST to minipaas.yaml's `cron.webhook`. The body has a
 * `text` field, so a Telegram bot's `sendMessage?chat_id=...` URL (or a Slack-style incoming webhook)
 * shows it as it is, plus the details for receivers that read them. Deduplication (one alert per
 * failing streak) is the database's (`mp.cron_alert_claim`); this only sends.
 */
import type { Run } from '../../sql/control/cron.ts';

/** How long the receiver gets to answer. */
const TIMEOUT_MS = 5000;

/** What an alert says. */
export interface CronAlert {
  run: Pick<Run, 'id' | 'environment' | 'name' | 'tickAt' | 'trigger'>;
  exitCode: number;
  logs: string[];
  message: string;
}

/** Pure: the alert's JSON body. */
export function alertBody(alert: CronAlert): Record<string, unknown> {
  const tail = alert.logs.slice(-5).join('\n');
  return {
    text: `MiniPaaS: cron job ${alert.run.name} of ${alert.run.environment} failed (exit code ${alert.exitCode}) at ${alert.run.tickAt.toISOString()}${tail ? `\n${tail}` : ''}\nFurther failures are not alerted until a run succeeds.`,
    environment: alert.run.environment,
    job: alert.run.name,
    run: Number(alert.run.id),
    tick_at: alert.run.tickAt.toISOString(),
    trigger: alert.run.trigger,
    exit_code: alert.exitCode,
    error: alert.message,
    logs: alert.logs,
  };
}

/** POSTs the alert; resolves with the HTTP status, throws on a network error or timeout. */
export async function postAlert(url: string, alert: CronAlert): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(alertBody(alert)),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  await res.arrayBuffer().catch(() => undefined);
  return res.status;
}
