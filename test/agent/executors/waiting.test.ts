import { describe, expect, it } from 'vitest';
import { editDistance, listNames, nearMiss } from '../../../agent/executors/near-miss.ts';
import { waitUntil } from '../../../agent/executors/waiting.ts';

describe('waitUntil', () => {
  it('returns the first value that is not undefined or false', async () => {
    let n = 0;
    const value = await waitUntil(async () => (++n === 3 ? `after ${n}` : undefined), {
      timeoutMs: 1000,
      intervalMs: 1,
      signal: new AbortController().signal,
      onTimeout: () => new Error('timeout'),
    });
    expect(value).toBe('after 3');
  });

  it('accepts 0 as a value (a count that reached zero)', async () => {
    const value = await waitUntil(async () => 0, {
      timeoutMs: 10,
      signal: new AbortController().signal,
      onTimeout: () => new Error('timeout'),
    });
    expect(value).toBe(0);
  });

  it('throws the error onTimeout builds once the deadline passed', async () => {
    await expect(
      waitUntil(async () => false, {
        timeoutMs: 30,
        intervalMs: 5,
        signal: new AbortController().signal,
        onTimeout: () => new Error('still not converged'),
      }),
    ).rejects.toThrow('still not converged');
  });

  it('stops within the pause when cancelled, without waiting for the deadline', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    const err = await waitUntil(async () => undefined, {
      timeoutMs: 60_000,
      intervalMs: 10_000,
      signal: controller.signal,
      onTimeout: () => new Error('timeout'),
    }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('near miss', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('wbe', 'web')).toBe(1);
    expect(editDistance('web', 'web')).toBe(0);
    expect(editDistance('Web', 'web')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests only plausible typos', () => {
    expect(nearMiss('wbe', ['worker', 'web'])).toBe('web');
    expect(nearMiss('service.scal', ['docker.info', 'service.scale'])).toBe('service.scale');
    expect(nearMiss('db', ['web', 'worker'])).toBeUndefined();
    expect(nearMiss('x', [])).toBeUndefined();
  });

  it('lists names sorted, shortened after a limit', () => {
    expect(listNames([])).toBe('(none)');
    expect(listNames(['b', 'a'])).toBe('a, b');
    expect(listNames(['a', 'b', 'c', 'd'], 2)).toBe('a, b and 2 more');
  });
});
