/** `healthcheck:` to the container spec's HealthConfig, durations in nanoseconds. */
import { at, convertError } from './errors.ts';
import { parseDuration } from './units.ts';

type Dict = Record<string, unknown>;

/** The Engine API HealthConfig (durations in ns; 0 means the engine's default). */
export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
  StartInterval?: number;
}

/**
 * Converts a service's healthcheck; undefined when the file has none. `disable: true` is `["NONE"]`,
 * and may not come with a `test`, as docker/cli refuses.
 */
export function convertHealthcheck(hc: Dict | undefined, where: string): HealthConfig | undefined {
  if (!hc) return undefined;
  const test = hc.test as string[] | undefined;
  if (hc.disable === true) {
    if (test && test.length > 0) throw convertError(where, "'test' and 'disable' cannot be set at the same time");
    return { Test: ['NONE'] };
  }
  const d = (key: string): number => (hc[key] === undefined ? 0 : at(`${where}.${key}`, () => parseDuration(hc[key])));
  return {
    Test: test,
    Timeout: d('timeout'),
    Interval: d('interval'),
    Retries: hc.retries === undefined ? 0 : Number(hc.retries),
    StartPeriod: d('start_period'),
    StartInterval: d('start_interval'),
  };
}
