/**
 * All CLI output formatting: aligned tables for people, JSON for scripts. Commands hand over rows of
 * plain values and never format by themselves, so `--json` and the table always show the same data.
 */
import type { Context } from './context.ts';

/** A value a row may hold. */
export type Cell = string | number | boolean | null | undefined | Date | object;

/** One table column: the row key it shows and its heading (default: the key, upper-cased). */
export interface Column<R> {
  key: keyof R & string;
  heading?: string;
  /** Right-align (numbers). */
  right?: boolean;
  /** Cut longer cells to this many characters (payloads). */
  max?: number;
}

/** `2026-11-26T23:31:39Z`: UTC to the second, sortable and unambiguous. */
export function formatTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A cell as table text: `-` for nothing, JSON for objects. */
export function formatCell(v: Cell): string {
  if (v === null || v === undefined) return '-';
  if (v instanceof Date) return formatTime(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Seconds as `45s`, `12m05s`, `3h02m`, `2d04h`: an age a person reads at a glance. */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '-';
  const s = Math.floor(seconds);
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

function truncate(text: string, max: number | undefined): string {
  if (max === undefined || text.length <= max) return text;
  return `${text.slice(0, max - 1)}…`;
}

/** Renders rows as columns separated by two spaces, headings first; no colours, no box drawing. */
export function renderTable<R extends object>(rows: R[], columns: Column<R>[]): string {
  const cells = rows.map((r) => columns.map((c) => truncate(formatCell(r[c.key] as Cell), c.max)));
  const headings = columns.map((c) => c.heading ?? c.key.toUpperCase());
  const widths = columns.map((_, i) => Math.max(headings[i]!.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]): string =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headings), ...cells.map(line)].join('\n') + '\n';
}

/** JSON for scripts: dates as ISO strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

/**
 * Prints a list: a table, or with `--json` one JSON array. `empty` is what a person sees when there are
 * no rows (scripts get `[]`).
 */
export function printRows<R extends object>(ctx: Context, rows: R[], columns: Column<R>[], empty: string): void {
  if (ctx.json) ctx.stdout.write(`${toJson(rows)}\n`);
  else if (rows.length === 0) ctx.stdout.write(`${empty}\n`);
  else ctx.stdout.write(renderTable(rows, columns));
}

/** Prints one object: aligned `key  value` lines, or with `--json` one JSON object. */
export function printObject<R extends object>(ctx: Context, row: R, columns: Column<R>[]): void {
  if (ctx.json) {
    ctx.stdout.write(`${toJson(row)}\n`);
    return;
  }
  const headings = columns.map((c) => c.heading ?? c.key);
  const width = Math.max(...headings.map((h) => h.length));
  for (const [i, c] of columns.entries()) {
    ctx.stdout.write(`${headings[i]!.padEnd(width)}  ${truncate(formatCell(row[c.key] as Cell), c.max)}\n`);
  }
}

/** Prints a one-line result: `text` for people, `json` for scripts. */
export function printResult(ctx: Context, text: string, json: object): void {
  ctx.stdout.write(ctx.json ? `${toJson(json)}\n` : `${text}\n`);
}

/**
 * A bigint from PostgreSQL (text in `pg`) as a JSON-friendly number; past 2^53 it stays text rather
 * than silently losing digits.
 */
export function bigintValue(v: string | number | null): number | string | null {
  if (v === null || typeof v === 'number') return v;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

/**
 * Prints one record on its own line, for streaming output (`mp stream tail`): the `fields` separated by
 * two spaces for people, or with `--json` one JSON object per line (NDJSON) for scripts.
 */
export function printRecord(ctx: Context, fields: Cell[], json: object): void {
  ctx.stdout.write(ctx.json ? `${toJson(json)}\n` : `${fields.map(formatCell).join('  ')}\n`);
}
