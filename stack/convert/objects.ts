/**
 * Secrets and configs: the objects a stack creates from files (or, as the Compose specification
 * adds, from a variable or inline content), external ones it only references, and each service's
 * references to them (target, uid, gid, mode).
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { StackObject } from '../types.ts';
import { convertError } from './errors.ts';
import { scope, withStackLabel, type ConvertContext } from './namespace.ts';

type Dict = Record<string, unknown>;

type Kind = 'secret' | 'config';

const isExternal = (def: Dict): boolean => def.external === true || (typeof def.external === 'object' && def.external !== null);

/** The engine name of a secret/config: `name:`, an external object's own key, or `<stack>_<key>`. */
export function objectName(key: string, def: Dict, stack: string): string {
  if (typeof def.name === 'string') return def.name;
  const ext = def.external as Dict | undefined;
  if (ext && typeof ext === 'object' && typeof ext.name === 'string') return ext.name;
  return isExternal(def) ? key : scope(stack, key);
}

function content(kind: Kind, key: string, def: Dict, ctx: ConvertContext): Buffer {
  const where = `${kind}s.${key}`;
  if (typeof def.file === 'string') {
    const path = posix.isAbsolute(def.file) ? def.file : posix.join(ctx.workingDir, def.file);
    try {
      const data = ctx.readFile(path);
      return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    } catch (err) {
      throw convertError(where, `cannot read file ${path}: ${(err as Error).message}`, 'check the path; relative paths start from the environment directory');
    }
  }
  if (typeof def.environment === 'string') {
    const v = ctx.env[def.environment];
    if (v === undefined) throw convertError(where, `variable ${def.environment} is not set`, `set ${def.environment} in .env, minipaas.yaml \`env:\` or the shell`);
    return Buffer.from(v, 'utf8');
  }
  if (kind === 'config' && typeof def.content === 'string') return Buffer.from(def.content, 'utf8');
  throw convertError(where, `a ${kind} needs file:${kind === 'config' ? ', content:' : ''} or environment:, or external: true`);
}

/** sha256 (hex) of an object's content: plans compare it, never the content. */
export function digestOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Every top-level secret or config (used by a service or not: `docker stack deploy` creates them
 * all), with its content read through `ctx.readFile`.
 */
export function convertObjects(kind: Kind, defs: Record<string, Dict>, ctx: ConvertContext): StackObject[] {
  return Object.keys(defs)
    .sort()
    .map((key) => {
      const def = defs[key]!;
      const name = objectName(key, def, ctx.stack);
      if (isExternal(def)) return { key, name, external: true };
      const spec: NonNullable<StackObject['spec']> = { Name: name, Labels: withStackLabel(ctx.stack, def.labels as Record<string, string> | undefined) };
      let data: Buffer;
      if (kind === 'secret' && typeof def.driver === 'string') {
        // A secret from a driver (a plugin) has no content of its own.
        spec.Driver = { Name: def.driver, ...(def.driver_opts ? { Options: def.driver_opts as Record<string, string> } : {}) };
        data = Buffer.alloc(0);
      } else {
        data = content(kind, key, def, ctx);
      }
      if (typeof def.template_driver === 'string') spec.Templating = { Name: def.template_driver };
      return { key, name, external: false, spec, data: data.toString('base64'), digest: digestOf(data) };
    });
}

/** A service's reference to a secret or config. */
export interface ObjectReference {
  File: { Name: string; UID: string; GID: string; Mode: number };
  SecretName?: string;
  ConfigName?: string;
}

/**
 * A service's `secrets:`/`configs:` (long syntax) as references by name, sorted by name as
 * docker/cli sorts them; the agent fills in the IDs once the objects exist. Defaults: target = the
 * key, uid/gid 0, mode 0444.
 */
export function convertReferences(kind: Kind, refs: Dict[] | undefined, defs: Record<string, Dict>, stack: string, where: string): ObjectReference[] {
  const out = (refs ?? []).map((ref) => {
    const source = String(ref.source ?? '');
    const def = defs[source];
    if (!def) {
      throw convertError(`${where}.${kind}s`, `${kind} '${source}' is not defined under top-level ${kind}s`, `defined ${kind}s: ${Object.keys(defs).join(', ') || 'none'}`);
    }
    const file = {
      Name: typeof ref.target === 'string' && ref.target !== '' ? ref.target : source,
      UID: ref.uid === undefined ? '0' : String(ref.uid),
      GID: ref.gid === undefined ? '0' : String(ref.gid),
      Mode: ref.mode === undefined ? 0o444 : typeof ref.mode === 'string' ? parseInt(ref.mode, 8) : Number(ref.mode),
    };
    const name = objectName(source, def, stack);
    return kind === 'secret' ? { File: file, SecretName: name } : { File: file, ConfigName: name };
  });
  const nameOf = (r: ObjectReference): string => r.SecretName ?? r.ConfigName ?? '';
  return out.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
}
