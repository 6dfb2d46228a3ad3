/** An `ExecutorContext` for tests: the real engine, steps and log lines recorded for assertions. */
import type { DockerEngine } from '../../../agent/docker/engine.ts';
import type { ExecutorContext, Json } from '../../../agent/executors/types.ts';

export interface RecordedStep {
  name: string;
  message: string;
  data?: Record<string, Json | undefined>;
}

export interface RecordingContext extends ExecutorContext {
  steps: RecordedStep[];
  logs: { level: string; message: string }[];
  /** Aborts `signal`, as a cancelled operation would. */
  abort(): void;
}

/**
 * A context on `docker` whose `step` may also run a hook (to cancel mid-way, for example). The
 * operation id defaults to a unique one, so executors that name objects after it never collide.
 */
export function recordingContext(
  docker: DockerEngine,
  onStep?: (step: RecordedStep) => void,
  operationId = `t${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`,
): RecordingContext {
  const controller = new AbortController();
  const steps: RecordedStep[] = [];
  const logs: { level: string; message: string }[] = [];
  const logAt = (level: string) => (message: string) => void logs.push({ level, message });
  return {
    docker,
    operationId,
    steps,
    logs,
    signal: controller.signal,
    abort: () => controller.abort(),
    step(name, message, data) {
      const step = { name, message, data };
      steps.push(step);
      onStep?.(step);
    },
    log: { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') },
  };
}
