/**
 * Redraws the charts of committed results from their JSON, without running anything: for a change to
 * the chart itself.
 *
 *   npx tsx bench/redraw.ts latest big      # bench/results/latest.json -> bench/results/latest.svg, ...
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chartTitle, writeChart } from './chart.ts';

const RESULTS = join(import.meta.dirname, 'results');

for (const name of process.argv.slice(2)) {
  const results = JSON.parse(await readFile(join(RESULTS, `${name}.json`), 'utf8'));
  await writeChart(join(RESULTS, `${name}.svg`), results.rows, chartTitle(results.server.version, results.reps, results.options.n));
  console.log(`wrote ${join(RESULTS, `${name}.svg`)}`);
}
