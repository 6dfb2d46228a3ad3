// The claim's timestamp parser: equal texts parse once, but every row gets its own, correct Date.
import { describe, expect, it } from 'vitest';
import { batchTypeParsers } from '../../../sql/queues/timestamp-memo.ts';

const TIMESTAMPTZ = 1184;
const INT4 = 23;

describe('batchTypeParsers', () => {
  it('parses runs of equal and different timestamps to the right instants, one Date object per cell', () => {
    const parse = batchTypeParsers().getTypeParser(TIMESTAMPTZ, 'text') as (t: string) => Date;
    const a1 = parse('2026-11-27 01:44:09.674176+00');
    const a2 = parse('2026-11-27 01:44:09.674176+00');
    const b = parse('2026-11-27 03:14:09.5+05:30');
    const a3 = parse('2026-11-27 01:44:09.674176+00');
    expect([a1, a2, b, a3].map((d) => d.toISOString())).toEqual([
      '2026-11-27T01:44:09.674Z',
      '2026-11-27T01:44:09.674Z',
      '2026-11-26T21:44:09.500Z',
      '2026-11-27T01:44:09.674Z',
    ]);
    expect(a1).not.toBe(a2);
    a1.setFullYear(1999);
    expect(parse('2026-11-27 01:44:09.674176+00').getUTCFullYear()).toBe(2026);
  });

  it('hands infinity back as the driver does, and leaves other types to the driver', () => {
    const parsers = batchTypeParsers();
    const parse = parsers.getTypeParser(TIMESTAMPTZ, 'text') as (t: string) => unknown;
    expect(parse('infinity')).toBe(Infinity);
    expect(parse('-infinity')).toBe(-Infinity);
    expect((parsers.getTypeParser(INT4, 'text') as (t: string) => unknown)('42')).toBe(42);
  });
});
