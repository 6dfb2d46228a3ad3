/**
 * Parses the timestamps of a claimed batch once per distinct value. The rows of one claim share
 * `lease_until` (one `now() + lease`), and jobs enqueued together share `enqueued_at`, yet the driver
 * parses every cell: in a CPU profile of a 40,000 jobs/s drain, timestamp parsing was the worker's
 * largest cost after the socket. Each row still gets its own Date object (Dates are mutable).
 */
import pg from 'pg';

const TIMESTAMPTZ_OID = 1184;

type TextParser = (text: string) => unknown;

/** Remembers the last text it parsed: runs of equal timestamps cost one parse. */
function memoizedTimestamp(parse: TextParser): TextParser {
  let lastText: string | null = null;
  let lastMs = 0;
  return (text) => {
    if (text !== lastText) {
      const parsed = parse(text);
      // 'infinity' and friends are not Dates: hand them back as the driver would.
      if (!(parsed instanceof Date)) return parsed;
      lastText = text;
      lastMs = parsed.getTime();
    }
    return new Date(lastMs);
  };
}

/** Type parsers for one query's result: the driver's own, with timestamptz memoized per column. */
export function batchTypeParsers(): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
      const parser = pg.types.getTypeParser(oid, format as 'text');
      return oid === TIMESTAMPTZ_OID && format !== 'binary' ? memoizedTimestamp(parser as TextParser) : parser;
    }) as pg.CustomTypesConfig['getTypeParser'],
  };
}
