/**
 * Compiling the Compose specification's JSON schema with ajv, at run time or ahead of time. Compiling
 * this 100 kB schema takes ajv about 0.3 s on an idle 2-core machine (1 s under load), paid by every
 * `mp deploy`; so the build (scripts/build.mjs) compiles it once into standalone JavaScript beside the
 * built code (`compose-validator.cjs`, 30 ms to load), and the sources compile it when they run.
 */
import { createRequire } from 'node:module';
import type { Options, ValidateFunction } from 'ajv';

const require = createRequire(import.meta.url);

/** The file the build writes the standalone validator to, beside `validate.js`. */
export const STANDALONE_FILE = 'compose-validator.cjs';

// strict off: the schema uses annotation keywords (`deprecated`) ajv does not know; validateSchema
// off: its `$schema` URL has no trailing `#`, which ajv does not map to the draft-07 meta-schema.
// verbose: errors carry their schema node, which the messages use to name the allowed keys.
const OPTIONS: Options = { strict: false, allErrors: true, validateSchema: false, verbose: true };

function schema(): Record<string, unknown> {
  return require('./compose-spec.json') as Record<string, unknown>;
}

/** Compiles the schema now. */
export function compileComposeSchema(): ValidateFunction {
  const { Ajv } = require('ajv') as typeof import('ajv');
  return new Ajv(OPTIONS).compile(schema());
}

/** The schema compiled to standalone CommonJS source (what the build writes to `STANDALONE_FILE`). */
export function standaloneComposeValidator(): string {
  const { Ajv } = require('ajv') as typeof import('ajv');
  const standalone = (require('ajv/dist/standalone') as { default: (ajv: InstanceType<typeof Ajv>, fn: ValidateFunction) => string }).default;
  const ajv = new Ajv({ ...OPTIONS, code: { source: true } });
  return standalone(ajv, ajv.compile(schema()));
}
