/**
 * Parsing one Compose file: YAML text to plain data, with errors that name the file, line and column.
 *
 * The tags `!reset` and `!override` of the Compose specification's merge rules become marker objects
 * (`ResetValue`, `OverrideValue`) that `merge.ts` acts on; nothing else sees them.
 */
import { isNode, parseDocument, Scalar, visit, type ScalarTag, type Tags } from 'yaml';
import { ConfigError } from '../../sql/errors.ts';

/** `!reset`: the override file removes the value the earlier files set. */
export class ResetValue {
  readonly reset = true;
}

/** `!override VALUE`: the value replaces the earlier one instead of merging with it. */
export class OverrideValue {
  constructor(readonly value: unknown) {}
}

/** A Compose file as the loader takes it: its path (for messages and relative paths) and its text. */
export interface ComposeFile {
  path: string;
  content: string;
}

// Go's yaml.v3 (what `docker stack deploy` parses with) reads `0440` as octal, as YAML 1.1 did; YAML 1.2
// reads it as decimal 440. File modes are written that way (`mode: 0440`), so keep the Go reading.
const legacyOctal: ScalarTag = {
  tag: 'tag:yaml.org,2002:int',
  default: true,
  test: /^0[0-7]+$/,
  resolve: (src: string) => parseInt(src, 8),
};

function customTags(tags: Tags): Tags {
  return [legacyOctal, ...tags];
}

/**
 * Turns `!reset` and `!override` nodes (scalars, sequences or mappings) into scalars holding the
 * markers, so `toJS` returns them as they are.
 */
function markMergeTags(doc: ReturnType<typeof parseDocument>): void {
  visit(doc, {
    Node(_key, node) {
      if (!isNode(node) || (node.tag !== '!reset' && node.tag !== '!override')) return undefined;
      const marker = node.tag === '!reset' ? new ResetValue() : new OverrideValue(node.toJS(doc));
      return new Scalar(marker);
    },
  });
}

/**
 * Parses one Compose file into plain data. Throws `ConfigError` (`COMPOSE_YAML`) naming `file:line:col`
 * for a syntax error, a duplicate key, or a top level that is not a mapping.
 *
 * @example
 *   parseComposeYaml({ path: 'compose.yaml', content: 'services:\n  web:\n    image: nginx\n' })
 */
export function parseComposeYaml(file: ComposeFile): Record<string, unknown> {
  const doc = parseDocument(file.content, { uniqueKeys: true, merge: true, customTags });
  const err = doc.errors[0];
  if (!err) markMergeTags(doc);
  if (err) {
    const pos = err.linePos?.[0];
    const where = pos ? `${file.path}:${pos.line}:${pos.col}` : file.path;
    const first = err.message.split('\n')[0] ?? err.message;
    throw new ConfigError(
      'COMPOSE_YAML',
      `${where}: ${first.replace(/ at line \d+, column \d+:?$/, '')}`,
      'fix the YAML syntax at that line (indentation, quotes, a missing colon)',
    );
  }
  // Aliases are the one way a small file can expand to a huge one; 100 is far above what people write.
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof ResetValue) {
    throw new ConfigError(
      'COMPOSE_YAML',
      `${file.path}: the top level must be a mapping (services:, networks:, ...), not ${Array.isArray(value) ? 'a list' : typeof value}`,
      'a Compose file starts with `services:`',
    );
  }
  return value as Record<string, unknown>;
}
