/**
 * Service `volumes:` (long syntax, see the loader) to container Mounts: named volumes (scoped
 * `<stack>_<key>` and labelled, unless external or named), anonymous volumes, bind mounts (relative
 * sources resolved against the working directory, `~` against HOME), tmpfs.
 */
import { posix } from 'node:path';
import type { VolumeEntry } from '../loader/normalize.ts';
import { convertError, at } from './errors.ts';
import { scope, withStackLabel, type ConvertContext } from './namespace.ts';
import { parseBytes } from './units.ts';

type Dict = Record<string, unknown>;

/** The Engine API Mount. */
export interface Mount {
  Type: string;
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string };
  VolumeOptions?: {
    NoCopy?: boolean;
    Subpath?: string;
    Labels?: Record<string, string>;
    DriverConfig?: { Name?: string; Options?: Record<string, string> };
  };
  TmpfsOptions?: { SizeBytes?: number };
}

/** The path of a bind mount's source on the node: absolute, from the working directory. */
export function bindSource(source: string, ctx: Pick<ConvertContext, 'workingDir' | 'env'>): string {
  let s = source;
  if (s.startsWith('~') && ctx.env.HOME !== undefined) s = ctx.env.HOME + s.slice(1);
  return posix.isAbsolute(s) || /^[A-Za-z]:[\\/]/.test(s) ? s : posix.join(ctx.workingDir, s);
}

function base(v: VolumeEntry): Mount {
  const m: Mount = { Type: v.type, Target: v.target, ReadOnly: v.read_only === true };
  if (v.source !== undefined) m.Source = v.source;
  if (v.consistency !== undefined) m.Consistency = String(v.consistency);
  return m;
}

function refuse(v: VolumeEntry, keys: Array<keyof VolumeEntry>, where: string): void {
  for (const k of keys) {
    if (v[k] !== undefined) throw convertError(where, `${String(k)} options are incompatible with type ${v.type}`);
  }
}

/**
 * Converts one service's volumes. `volumes` is the top-level `volumes:` section; a named volume
 * that is not defined there is an error, as `docker stack deploy` makes it.
 */
export function convertMounts(entries: VolumeEntry[] | undefined, volumes: Record<string, Dict>, ctx: ConvertContext, where: string): Mount[] {
  return (entries ?? []).map((v, i) => {
    const w = `${where}.volumes[${i}]`;
    const m = base(v);
    switch (v.type) {
      case 'volume': {
        refuse(v, ['tmpfs', 'bind', 'image'], w);
        if (!v.source) return m; // anonymous
        const def = volumes[v.source];
        if (!def) {
          throw convertError(w, `volume '${v.source}' is not defined under top-level volumes`, `add \`volumes: { ${v.source}: {} }\` at the top level of the file`);
        }
        const external = def.external === true || (typeof def.external === 'object' && def.external !== null);
        m.Source = typeof def.name === 'string' ? def.name : external ? v.source : scope(ctx.stack, v.source);
        m.VolumeOptions = {};
        if (v.volume?.nocopy !== undefined) m.VolumeOptions.NoCopy = v.volume.nocopy === true;
        if (typeof v.volume?.subpath === 'string') m.VolumeOptions.Subpath = v.volume.subpath;
        if (external) return m;
        m.VolumeOptions.Labels = withStackLabel(ctx.stack, def.labels as Record<string, string> | undefined);
        if (def.driver !== undefined || def.driver_opts !== undefined) {
          m.VolumeOptions.DriverConfig = {};
          if (typeof def.driver === 'string') m.VolumeOptions.DriverConfig.Name = def.driver;
          if (def.driver_opts) {
            m.VolumeOptions.DriverConfig.Options = Object.fromEntries(
              Object.entries(def.driver_opts as Dict).map(([k, val]) => [k, String(val)]),
            );
          }
        }
        return m;
      }
      case 'bind':
        refuse(v, ['volume', 'tmpfs', 'image'], w);
        if (!v.source) throw convertError(w, 'a bind mount needs a source');
        m.Source = bindSource(v.source, ctx);
        if (v.bind) m.BindOptions = v.bind.propagation === undefined ? {} : { Propagation: String(v.bind.propagation) };
        return m;
      case 'tmpfs':
        refuse(v, ['volume', 'bind', 'image'], w);
        if (v.source) throw convertError(w, 'a tmpfs mount takes no source');
        if (v.tmpfs) m.TmpfsOptions = v.tmpfs.size === undefined ? {} : { SizeBytes: at(`${w}.tmpfs.size`, () => parseBytes(v.tmpfs?.size)) };
        return m;
      case 'npipe':
        if (v.bind) m.BindOptions = { Propagation: String(v.bind.propagation ?? '') };
        return m;
      default:
        throw convertError(w, `volume type '${v.type}' is not supported by Swarm`, 'use volume, bind or tmpfs');
    }
  });
}
