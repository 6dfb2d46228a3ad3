/**
 * Editing `routes:` of minipaas.yaml (the Compose edits are in index.ts): add or replace one route,
 * or remove one, through the yaml Document API, which keeps comments and key order. Pure: text in,
 * text out; the caller writes it with the Compose changes in one `writeFilesAtomically`.
 */
import { isMap, parseDocument, type YAMLMap } from 'yaml';
import { ConfigError } from '../../sql/errors.ts';

/** A route's value as minipaas.yaml holds it. */
export type RouteEntry = string | { to: string; tls: 'auto' | 'internal' };

/** One edit of `routes:`: set `key` to `value`, or remove `key`. */
export type RouteEdit = { op: 'set'; key: string; value: RouteEntry } | { op: 'remove'; key: string };

/**
 * The settings text with the edit made. An edit that is already true returns the text unchanged.
 * Throws `ConfigError` when `routes:` is there but not a mapping.
 *
 * @example planRouteEdit('project:\n  files: [compose.yaml]\n', { op: 'set', key: 'http://localhost:8000', value: 'api:8080' })
 *   // 'project:\n  files: [compose.yaml]\nroutes:\n  http://localhost:8000: api:8080\n'
 */
export function planRouteEdit(path: string, text: string, edit: RouteEdit): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new ConfigError('INVALID_ENVIRONMENT', `${path}: ${doc.errors[0]!.message.split('\n')[0]}`, 'fix the YAML syntax first');
  const routes = doc.get('routes', true);
  if (routes !== undefined && routes !== null && !isMap(routes)) {
    throw new ConfigError('INVALID_ENVIRONMENT', `${path}: routes: is not a mapping of URL to service:port`, 'fix it by hand');
  }
  const current = (routes as YAMLMap | undefined)?.toJSON() as Record<string, unknown> | undefined;
  if (edit.op === 'remove') {
    if (!current || !(edit.key in current)) return text;
    doc.deleteIn(['routes', edit.key]);
    if ((doc.get('routes', true) as YAMLMap).items.length === 0) doc.delete('routes');
  } else {
    if (current && JSON.stringify(current[edit.key]) === JSON.stringify(edit.value)) return text;
    if (!routes) {
      const map = doc.createNode({ [edit.key]: edit.value });
      map.commentBefore = ' Routes through the environment\'s Caddy: URL -> service:port (docs/routing.md).';
      doc.set('routes', map);
    } else {
      const value = doc.createNode(edit.value);
      if (isMap(value)) value.flow = true;
      doc.setIn(['routes', edit.key], value);
    }
  }
  const after = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  const check = parseDocument(after).toJS() as { routes?: Record<string, unknown> };
  const expected = edit.op === 'set' ? JSON.stringify(edit.value) : undefined;
  if (JSON.stringify(check.routes?.[edit.key]) !== expected) {
    throw new ConfigError('COMPOSE_EDIT', `${path}: editing routes: would not give the intended document`, 'edit the file by hand; nothing was changed');
  }
  return after;
}
