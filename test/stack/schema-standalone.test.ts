// The build compiles the Compose schema ahead of time (stack/schema/compile.ts); the standalone
// validator must judge every file exactly as the one compiled at run time does.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { compileComposeSchema, standaloneComposeValidator } from '../../stack/schema/compile.ts';

// Inside the checkout (under the ignored .mp/), so the generated code finds ajv's runtime in node_modules.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
mkdirSync(join(root, '.mp'), { recursive: true });
const dir = mkdtempSync(join(root, '.mp', 'schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const documents: [string, unknown][] = [
  ['a valid file', { services: { web: { image: 'busybox', ports: ['8080:80'], deploy: { replicas: 2, update_config: { order: 'start-first' } } } } }],
  ['an unknown service key', { services: { web: { image: 'busybox', imagee: 'x' } } }],
  ['a wrong type deep in deploy', { services: { web: { image: 'busybox', deploy: { replicas: [1], resources: { limits: { cpus: {} } } } } } }],
  ['a bad top-level key and a bad network', { servicez: {}, services: { a: { image: 'x', networks: 7 } }, networks: { n: { driver: 3 } } }],
];

describe('the ahead-of-time Compose validator', () => {
  const file = join(dir, 'compose-validator.cjs');
  writeFileSync(file, standaloneComposeValidator());
  const standalone = createRequire(import.meta.url)(file) as ValidateFunction;
  const runtime = compileComposeSchema();
  const verdict = (v: ValidateFunction, doc: unknown) => ({
    valid: v(doc),
    errors: (v.errors ?? []).map((e) => ({ at: e.instancePath, keyword: e.keyword, params: e.params, allowed: Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}) })),
  });

  it.each(documents)('judges %s as the run-time validator does', (_name, doc) => {
    expect(verdict(standalone, doc)).toEqual(verdict(runtime, doc));
  });

  it('finds the problems, not only agrees', () => {
    expect(standalone(documents[0]![1])).toBe(true);
    expect(standalone(documents[1]![1])).toBe(false);
    expect(standalone.errors?.map((e) => e.params)).toContainEqual({ additionalProperty: 'imagee' });
  });
});
