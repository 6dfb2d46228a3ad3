/**
 * The one module that edits Compose files. Commands (`mp secret create --for`, `mp config create --for`,
 * later `mp code route|worker|job|cron`) describe edits as plain data; `planComposeEdits` turns them
 * into new file contents (pure: no file system), and `writeFilesAtomically` writes every changed file or
 * none. Nothing else writes YAML by hand.
 *
 * How an edit keeps the file: each is located with the `yaml` Document API and written as a splice of
 * the original text (stack/edit/splice.ts), so comments, key order, quoting and blank lines survive;
 * the result is parsed again and must equal what the Document API's own edit (`setIn`, `add`) gives,
 * or the plan fails instead of writing something else. An edit that is already true changes nothing,
 * so the same command twice changes no byte.
 *
 * Terminology: an *edit* is one change (set a key in a service, add to a service's list, remove a
 * key of a service, add a top-level entry); the *defining file* of a service is the first of the environment's Compose files
 * (in `project.files` order) that has it under `services:`; edits about a service go there.
 *
 * @example
 *   const plan = planComposeEdits(files, managedObjectEdits('secret', 'db_password', ['api', 'worker']));
 *   await writeFilesAtomically(plan.changes);
 */
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, isSeq, parseDocument, type Document, type Node, type YAMLMap } from 'yaml';
import { listNames, nearMiss } from '../../agent/executors/near-miss.ts';
import { ConfigError } from '../../sql/errors.ts';
import { appendItem, appendTopLevel, applySplices, fillEmpty, inferStyle, insertPair, removePair, replaceScalar, type Splice } from './splice.ts';

export { checkChanges, writeFilesAtomically, readFilesForEdit, type FileChange, type ReadFile } from './files.ts';

/** A JSON value, as edits carry them. */
export type EditValue = string | number | boolean | null | EditValue[] | { [key: string]: EditValue };

/** The top-level sections an `add-entry` edit may add to. */
export type Section = 'secrets' | 'configs' | 'networks' | 'volumes';

/** One change to the Compose files, as data. */
export type ComposeEdit =
  /** Sets `path` (keys below the service, e.g. `['deploy', 'replicas']`) to a scalar value. */
  | { op: 'set'; service: string; path: string[]; value: EditValue }
  /**
   * Adds `item` to the service's list `key` (created when absent) unless it is there: `match: 'source'`
   * also counts a long-syntax entry `{ source: item }` as there (secrets, configs).
   */
  | { op: 'add-to-list'; service: string; key: string; item: EditValue; match?: 'equal' | 'source' }
  /**
   * Removes `path` (keys below the service, e.g. `['ports']`) when present; a mapping it leaves empty
   * (`deploy:` with only `replicas:`) goes too, up to the service itself.
   */
  | { op: 'remove'; service: string; path: string[] }
  /** Adds `section.name: value` unless `section.name` exists, in `file` or in the defining file of `service`. */
  | { op: 'add-entry'; section: Section; name: string; value: EditValue; file?: string; service?: string };

/** A Compose file as read: its path (as the environment names it) and its text. */
export interface ComposeText {
  path: string;
  content: string;
}

/** What a plan does to one file. */
export interface PlannedFile {
  path: string;
  before: string;
  after: string;
  changed: boolean;
}

/** The new contents of every file, and one line per edit saying what it did. */
export interface EditPlan {
  files: PlannedFile[];
  /** Only the files that change. */
  changes: PlannedFile[];
  /** `compose.yaml: services.api.secrets += db_password`, or `... (already there)`. */
  notes: string[];
}

function parse(file: ComposeText): Document {
  const doc = parseDocument(file.content, { uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    throw new ConfigError(
      'COMPOSE_YAML',
      `${pos ? `${file.path}:${pos.line}:${pos.col}` : file.path}: ${(err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
      'fix the YAML syntax at that line; nothing was changed',
    );
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    throw new ConfigError('COMPOSE_YAML', `${file.path}: the top level must be a mapping`, 'a Compose file starts with `services:`');
  }
  return doc;
}

function servicesOf(doc: Document): string[] {
  const services = doc.get('services', true);
  return isMap(services) ? services.items.map((p) => String((p.key as { value?: unknown })?.value ?? p.key)) : [];
}

/**
 * The first file that defines `service`. `ConfigError` naming the files and the services they define
 * (with the near miss) when none does.
 */
export function definingFile(files: ComposeText[], service: string): ComposeText {
  const found = files.find((f) => servicesOf(parse(f)).includes(service));
  if (found) return found;
  const all = [...new Set(files.flatMap((f) => servicesOf(parse(f))))].sort();
  const guess = nearMiss(service, all);
  const where = files.map((f) => f.path).join(files.length === 2 ? ' or ' : ', ');
  throw new ConfigError(
    'UNKNOWN_SERVICE',
    `service '${service}' is not defined in ${where}; defined services: ${listNames(all)}`,
    guess ? `did you mean '${guess}'?` : 'add the service to a Compose file first, or pass a service that exists',
  );
}

const valueOf = (n: unknown): unknown => (n && typeof n === 'object' && 'toJSON' in n ? (n as { toJSON(): unknown }).toJSON() : n);

/** The pair of `map` whose key is `key`, with its key node. */
function pairOf(map: YAMLMap, key: string): { key: Node; value: Node | null } | undefined {
  const p = map.items.find((i) => String((i.key as { value?: unknown })?.value ?? i.key) === key);
  return p ? { key: p.key as Node, value: (p.value as Node | null) ?? null } : undefined;
}

/** The splice making `map[key] = value` for a key that is absent or empty. */
function setInMap(src: string, map: YAMLMap | null, keyNode: Node | null, path: string[], value: unknown, doc: Document): Splice {
  const nested = path.reduceRight<unknown>((acc, k) => ({ [k]: acc }), value);
  const style = inferStyle(doc, src);
  if (map === null) {
    if (!keyNode) return appendTopLevel(src, path[0]!, (nested as Record<string, unknown>)[path[0]!], style);
    return fillEmpty(src, keyNode, null, nested, style);
  }
  const [first, ...rest] = path;
  return insertPair(src, map, first!, rest.reduceRight<unknown>((acc, k) => ({ [k]: acc }), value), style);
}

interface Step {
  splice?: Splice;
  note: string;
  /** The same edit through the Document API, to check the splice against. */
  expect(doc: Document): void;
}

/** Walks `path` from the service; returns the map holding the last key, or the splice creating what is missing. */
function locate(doc: Document, src: string, service: string, path: string[], value: unknown): { map: YAMLMap; last: string } | { splice: Splice } {
  const services = doc.get('services', true) as YAMLMap;
  const svcPair = pairOf(services, service)!;
  let map: YAMLMap | null = isMap(svcPair.value) ? svcPair.value : null;
  let keyNode: Node = svcPair.key;
  for (let i = 0; i < path.length - 1; i++) {
    if (map === null) return { splice: setInMap(src, null, keyNode, path.slice(i), value, doc) };
    const p = pairOf(map, path[i]!);
    if (!p) return { splice: setInMap(src, map, null, path.slice(i), value, doc) };
    if (p.value !== null && !isMap(p.value) && !(isScalar(p.value) && p.value.value === null)) {
      throw new ConfigError('COMPOSE_EDIT', `services.${service}.${path.slice(0, i + 1).join('.')} is not a mapping`, 'edit it by hand');
    }
    keyNode = p.key;
    map = isMap(p.value) ? p.value : null;
  }
  if (map === null) return { splice: setInMap(src, null, keyNode, path.slice(-1), value, doc) };
  return { map, last: path.at(-1)! };
}

/** The step removing `edit.path` of the service, and any mapping that leaves empty (never the service). */
function removeStep(edit: Extract<ComposeEdit, { op: 'remove' }>, doc: Document, src: string, path: string): Step {
  const what = `services.${edit.service}.${edit.path.join('.')}`;
  const base = ['services', edit.service];
  const expect = (d: Document): void => {
    if (!d.hasIn([...base, ...edit.path])) return;
    d.deleteIn([...base, ...edit.path]);
    for (let i = edit.path.length - 1; i >= 1; i--) {
      const parent = d.getIn([...base, ...edit.path.slice(0, i)], true);
      if (!isMap(parent) || parent.items.length > 0) break;
      d.deleteIn([...base, ...edit.path.slice(0, i)]);
    }
  };
  const absent: Step = { note: `${path}: ${what} (already absent)`, expect };
  const chain: { map: YAMLMap; index: number }[] = [];
  let node: unknown = pairOf(doc.get('services', true) as YAMLMap, edit.service)!.value;
  for (const key of edit.path) {
    if (!isMap(node)) return absent;
    const index = node.items.findIndex((i) => String((i.key as { value?: unknown })?.value ?? i.key) === key);
    if (index < 0) return absent;
    chain.push({ map: node, index });
    node = node.items[index]!.value;
  }
  // The highest mapping the removal would leave empty goes instead (yaml's deleteIn leaves `{}`).
  let j = chain.length - 1;
  while (j > 0 && chain[j]!.map.items.length === 1) j--;
  const target = chain[j]!;
  try {
    return { splice: removePair(src, target.map, target.index), note: `${path}: ${what} removed`, expect };
  } catch {
    throw new ConfigError('COMPOSE_EDIT', `${path}: ${what} cannot be removed in place (its key does not start a line)`, 'remove it by hand');
  }
}

function stepFor(edit: ComposeEdit, doc: Document, src: string, path: string): Step {
  const style = inferStyle(doc, src);
  if (edit.op === 'remove') return removeStep(edit, doc, src, path);
  if (edit.op === 'add-entry') {
    const what = `${edit.section}.${edit.name}`;
    const expect = (d: Document): void => {
      if (!d.hasIn([edit.section, edit.name])) d.setIn([edit.section, edit.name], edit.value);
    };
    const top = doc.contents as YAMLMap | null;
    const section = top ? pairOf(top, edit.section) : undefined;
    if (!top || !section) {
      return { splice: appendTopLevel(src, edit.section, { [edit.name]: edit.value }, style), note: `${path}: ${what} added`, expect };
    }
    if (isMap(section.value)) {
      if (pairOf(section.value, edit.name)) return { note: `${path}: ${what} (already there)`, expect };
      return { splice: insertPair(src, section.value, edit.name, edit.value, style), note: `${path}: ${what} added`, expect };
    }
    if (section.value === null || (isScalar(section.value) && section.value.value === null)) {
      return { splice: fillEmpty(src, section.key, section.value, { [edit.name]: edit.value }, style), note: `${path}: ${what} added`, expect };
    }
    throw new ConfigError('COMPOSE_EDIT', `${path}: top-level ${edit.section} is not a mapping`, 'fix it by hand');
  }
  if (edit.op === 'set') {
    const what = `services.${edit.service}.${edit.path.join('.')}`;
    const expect = (d: Document): void => d.setIn(['services', edit.service, ...edit.path], edit.value);
    const at = locate(doc, src, edit.service, edit.path, edit.value);
    if ('splice' in at) return { splice: at.splice, note: `${path}: ${what} = ${JSON.stringify(edit.value)}`, expect };
    const p = pairOf(at.map, at.last);
    if (!p) return { splice: insertPair(src, at.map, at.last, edit.value, style), note: `${path}: ${what} = ${JSON.stringify(edit.value)}`, expect };
    if (isDeepStrictEqual(valueOf(p.value), edit.value)) return { note: `${path}: ${what} (already ${JSON.stringify(edit.value)})`, expect };
    if (p.value === null || (isScalar(p.value) && (p.value.value === null || typeof edit.value !== 'object'))) {
      const splice =
        p.value && isScalar(p.value) && p.value.range && p.value.range[1] > p.value.range[0] && typeof edit.value !== 'object'
          ? replaceScalar(src, p.value, edit.value)
          : fillEmpty(src, p.key, p.value, edit.value, style);
      return { splice, note: `${path}: ${what} = ${JSON.stringify(edit.value)}`, expect };
    }
    throw new ConfigError('COMPOSE_EDIT', `${path}: ${what} holds a list or mapping; it is not replaced automatically`, 'edit it by hand');
  }
  const what = `services.${edit.service}.${edit.key}`;
  const same = (v: unknown): boolean =>
    isDeepStrictEqual(v, edit.item) ||
    (edit.match === 'source' && typeof v === 'object' && v !== null && (v as { source?: unknown }).source === edit.item);
  const at = locate(doc, src, edit.service, [edit.key], [edit.item]);
  const expectAdd = (d: Document): void => {
    const seq = d.getIn(['services', edit.service, edit.key], true);
    if (isSeq(seq)) {
      if (!(seq.toJSON() as unknown[]).some(same)) seq.add(d.createNode(edit.item));
    } else d.setIn(['services', edit.service, edit.key], [edit.item]);
  };
  if ('splice' in at) return { splice: at.splice, note: `${path}: ${what} += ${JSON.stringify(edit.item)}`, expect: expectAdd };
  const p = pairOf(at.map, edit.key);
  if (!p) return { splice: insertPair(src, at.map, edit.key, [edit.item], style), note: `${path}: ${what} += ${JSON.stringify(edit.item)}`, expect: expectAdd };
  if (isSeq(p.value)) {
    if ((p.value.toJSON() as unknown[]).some(same)) return { note: `${path}: ${what} has ${JSON.stringify(edit.item)} (already there)`, expect: expectAdd };
    const splice = p.value.items.length === 0 && !p.value.flow ? fillEmpty(src, p.key, null, [edit.item], style) : appendItem(src, p.value, edit.item, style);
    return { splice, note: `${path}: ${what} += ${JSON.stringify(edit.item)}`, expect: expectAdd };
  }
  if (p.value === null || (isScalar(p.value) && p.value.value === null)) {
    return { splice: fillEmpty(src, p.key, p.value, [edit.item], style), note: `${path}: ${what} += ${JSON.stringify(edit.item)}`, expect: expectAdd };
  }
  throw new ConfigError('COMPOSE_EDIT', `${path}: ${what} is not a list`, 'edit it by hand');
}

/**
 * Applies `edits` in order to the files' texts; pure. Each edit goes to the file it names, or to the
 * defining file of its service. Throws `ConfigError` for a service no file defines (listing those
 * that exist), a file that does not parse, or a key of the wrong shape; nothing is written either way.
 *
 * @example
 *   planComposeEdits([{ path: 'compose.yaml', content }], [{ op: 'set', service: 'api', path: ['deploy', 'replicas'], value: 2 }])
 */
export function planComposeEdits(files: ComposeText[], edits: ComposeEdit[]): EditPlan {
  const texts = new Map(files.map((f) => [f.path, f.content]));
  const current = (): ComposeText[] => files.map((f) => ({ path: f.path, content: texts.get(f.path)! }));
  const notes: string[] = [];
  for (const edit of edits) {
    let path: string;
    if (edit.op === 'add-entry' && edit.file !== undefined) {
      if (!texts.has(edit.file)) throw new ConfigError('COMPOSE_EDIT', `${edit.file} is not one of the environment's Compose files (${files.map((f) => f.path).join(', ')})`);
      path = edit.file;
    } else {
      const service = edit.service;
      if (service === undefined) throw new ConfigError('COMPOSE_EDIT', `an add-entry edit of ${edit.op === 'add-entry' ? edit.section : ''} needs a file or a service`);
      path = definingFile(current(), service).path;
    }
    const src = texts.get(path)!;
    const doc = parse({ path, content: src });
    const step = stepFor(edit, doc, src, path);
    notes.push(step.note);
    if (!step.splice) continue;
    const after = applySplices(src, [step.splice]);
    // The splice must mean exactly what the Document API's edit means.
    const expected = parse({ path, content: src });
    step.expect(expected);
    const got = parse({ path, content: after });
    if (!isDeepStrictEqual(got.toJS(), expected.toJS())) {
      throw new ConfigError('COMPOSE_EDIT', `${path}: editing it in place would not give the intended document (${step.note})`, 'edit the file by hand; nothing was changed');
    }
    texts.set(path, after);
  }
  const planned = files.map((f) => ({ path: f.path, before: f.content, after: texts.get(f.path)!, changed: texts.get(f.path) !== f.content }));
  return { files: planned, changes: planned.filter((f) => f.changed), notes };
}

/**
 * The edits that make services use a managed secret or config (`mp secret create --for api`): in the
 * defining file of each service, the top-level entry `name: { external: true, x-minipaas: managed }`
 * (docs/secrets.md) and `name` in the service's `secrets:`/`configs:` list. Throws `ConfigError` when a
 * defining file already has `name` as a secret/config that is not external (a `file:` one would be
 * deployed instead of the managed value).
 */
export function managedObjectEdits(kind: 'secret' | 'config', name: string, services: string[], files: ComposeText[]): ComposeEdit[] {
  const section: Section = kind === 'secret' ? 'secrets' : 'configs';
  const edits: ComposeEdit[] = [];
  for (const service of services) {
    const file = definingFile(files, service);
    const existing = valueOf(parse(file).getIn([section, name], true)) as Record<string, unknown> | null | undefined;
    if (existing !== undefined && existing !== null && !(typeof existing === 'object' && existing.external)) {
      throw new ConfigError(
        'COMPOSE_CONFLICT',
        `${file.path} already defines ${section}.${name} and it is not external, so the service would get that ${kind} instead of the managed one`,
        `remove ${section}.${name} from ${file.path} (or use another --name), then run the command again`,
      );
    }
    edits.push({ op: 'add-entry', section, name, value: { external: true, 'x-minipaas': 'managed' }, service });
    edits.push({ op: 'add-to-list', service, key: section, item: name, match: 'source' });
  }
  return edits;
}
