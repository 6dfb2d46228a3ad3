/**
 * Short syntax to long syntax, per file and before merging, so that merge rules can key entries
 * (a port by what it publishes, a volume by its target) whichever syntax each file used.
 *
 * The canonical forms follow docker/cli's loader: `command: sleep 1` is split as a shell would
 * (no shell runs it), `environment:` and `labels:` become mappings, `networks:` a mapping, short
 * ports/volumes/secrets/configs their long objects.
 */
import { ConfigError } from '../../sql/errors.ts';
import { OverrideValue, ResetValue } from './yaml.ts';

type Dict = Record<string, unknown>;

const isDict = (v: unknown): v is Dict => !!v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/** Splits a command line into words like POSIX sh (quotes, backslashes), as docker/cli's shlex does. */
export function shellSplit(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1]!)) word += line[++i];
      else word += c;
      continue;
    }
    if (c === '#' && !inWord) break; // a comment, as shlex treats it
    if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\' && i + 1 < line.length) word += line[++i];
    else word += c;
  }
  if (quote) throw new Error(`unclosed ${quote} quote in "${line}"`);
  if (inWord) words.push(word);
  return words;
}

/** `FOO=bar` / `FOO` entries or a mapping, to a mapping; `allowNull` keeps `FOO` (no `=`) as null. */
export function toMapping(value: unknown, sep: string, allowNull: boolean): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (Array.isArray(value)) {
    for (const entry of value) {
      const s = String(entry);
      const at = s.indexOf(sep);
      if (at < 0) out[s] = allowNull ? null : '';
      else out[s.slice(0, at)] = s.slice(at + sep.length);
    }
  } else if (isDict(value)) {
    for (const [k, v] of Object.entries(value)) {
      // merge markers pass through to merge.ts
      if (v instanceof ResetValue || v instanceof OverrideValue) out[k] = v as unknown as string;
      else out[k] = v === null || v === undefined ? (allowNull ? null : '') : String(v);
    }
  }
  return out;
}

/** A long-syntax port, as the merge keys and the converter read it. */
export interface PortEntry {
  target: number;
  published?: number;
  protocol?: string;
  mode?: string;
  host_ip?: string;
  name?: string;
  app_protocol?: string;
}

function portRange(s: string, what: string, spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw new Error(`invalid ${what} '${s}' in port '${spec}'`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (end < start || end > 65535) throw new Error(`invalid ${what} range '${s}' in port '${spec}'`);
  return [start, end];
}

/**
 * Parses a short port (`80`, `8080:80`, `127.0.0.1:8080:80/udp`, `8000-8001:80-81`) into long
 * entries: ingress mode, as `docker stack deploy` publishes short ports. An IP is recorded but Swarm
 * listens on all addresses (docker/cli warns and drops it too).
 */
export function parseShortPort(spec: string): PortEntry[] {
  let rest = spec;
  let protocol = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    protocol = rest.slice(slash + 1).toLowerCase();
    rest = rest.slice(0, slash);
  }
  const parts = rest.split(':');
  const container = parts[parts.length - 1]!;
  let host = '';
  let ip = '';
  if (parts.length === 2) host = parts[0]!;
  else if (parts.length >= 3) {
    host = parts[parts.length - 2]!;
    ip = parts.slice(0, parts.length - 2).join(':').replace(/^\[(.*)\]$/, '$1');
  }
  const [cStart, cEnd] = portRange(container, 'container port', spec);
  const entries: PortEntry[] = [];
  const base = (target: number, published: number | undefined): PortEntry => ({
    target,
    ...(published !== undefined ? { published } : {}),
    protocol,
    mode: 'ingress',
    ...(ip ? { host_ip: ip } : {}),
  });
  if (host === '') {
    for (let p = cStart; p <= cEnd; p++) entries.push(base(p, undefined));
    return entries;
  }
  const [hStart, hEnd] = portRange(host, 'published port', spec);
  if (cStart === cEnd) {
    // One container port behind a range of published ports: one entry per published port.
    for (let h = hStart; h <= hEnd; h++) entries.push(base(cStart, h));
    return entries;
  }
  if (hEnd - hStart !== cEnd - cStart) throw new Error(`port ranges of different sizes in '${spec}'`);
  for (let i = 0; i <= cEnd - cStart; i++) entries.push(base(cStart + i, hStart + i));
  return entries;
}

function longPort(entry: Dict, where: string): PortEntry {
  const out: PortEntry = { target: Number(entry.target) };
  if (!Number.isInteger(out.target)) throw new Error(`${where}: target must be a port number`);
  if (entry.published !== undefined && entry.published !== null && entry.published !== '') {
    const p = Number(entry.published);
    if (!Number.isInteger(p)) throw new Error(`${where}: published must be a port number, not '${String(entry.published)}'`);
    out.published = p;
  }
  for (const k of ['protocol', 'mode', 'host_ip', 'name', 'app_protocol'] as const) {
    if (typeof entry[k] === 'string') out[k] = entry[k];
  }
  return out;
}

/** A long-syntax service volume. */
export interface VolumeEntry {
  type: string;
  source?: string;
  target: string;
  read_only?: boolean;
  consistency?: string;
  bind?: Dict;
  volume?: Dict;
  tmpfs?: Dict;
  image?: Dict;
}

const PROPAGATIONS = new Set(['rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave']);

function isFilePath(source: string): boolean {
  return source.startsWith('.') || source.startsWith('/') || source.startsWith('~') || /^[A-Za-z]:[\\/]/.test(source) || source.startsWith('\\\\');
}

/** Parses a short volume (`/data`, `vol:/data`, `./dir:/data:ro`), as docker/cli's ParseVolume does. */
export function parseShortVolume(spec: string): VolumeEntry {
  if (spec.length <= 2) return { type: 'volume', target: spec };
  // A Windows drive letter's colon is not a separator.
  const fields: string[] = [];
  let buf = '';
  for (const c of spec) {
    if (c === ':' && !(buf.length === 1 && /[A-Za-z]/.test(buf))) {
      fields.push(buf);
      buf = '';
    } else buf += c;
  }
  fields.push(buf);
  if (fields.some((f) => f === '')) throw new Error(`invalid volume '${spec}': empty section between colons`);
  if (fields.length > 3) throw new Error(`invalid volume '${spec}': too many colons`);
  const out: VolumeEntry = { type: 'volume', target: '' };
  if (fields.length === 1) out.target = fields[0]!;
  else {
    out.source = fields[0]!;
    out.target = fields[1]!;
  }
  for (const opt of (fields[2] ?? '').split(',').filter(Boolean)) {
    if (opt === 'ro') out.read_only = true;
    else if (opt === 'rw') out.read_only = false;
    else if (opt === 'nocopy') out.volume = { nocopy: true };
    else if (PROPAGATIONS.has(opt)) out.bind = { propagation: opt };
    // other options (z, Z, cached...) are ignored, as docker/cli ignores them
  }
  out.type = out.source !== undefined && isFilePath(out.source) ? 'bind' : 'volume';
  return out;
}

function stringList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

/** extra_hosts as `host:ip` entries (list with `=` or `:`, or a mapping), brackets off IPv6 addresses. */
function hostsList(v: unknown): string[] {
  const entries: Array<[string, string]> = [];
  if (Array.isArray(v)) {
    for (const e of v.map(String)) {
      const eq = e.indexOf('=');
      const colon = e.indexOf(':');
      const at = eq >= 0 ? eq : colon;
      if (at >= 0) entries.push([e.slice(0, at), e.slice(at + 1)]);
    }
  } else if (isDict(v)) {
    for (const [k, val] of Object.entries(v)) for (const ip of stringList(val)) entries.push([k, ip]);
    entries.sort((a, b) => `${a[0]}:${a[1]}`.localeCompare(`${b[0]}:${b[1]}`));
  }
  return entries.map(([h, ip]) => `${h}:${ip.replace(/^\[(.*)\]$/, '$1')}`);
}

function objectRef(v: unknown): Dict {
  return typeof v === 'string' ? { source: v } : isDict(v) ? { ...v } : {};
}

/**
 * One service of one file, in canonical (long) form. Throws `ConfigError` naming the file and the
 * service for a short syntax that does not parse.
 */
export function normalizeService(raw: Dict, file: string, name: string): Dict {
  const where = `${file}: services.${name}`;
  const svc: Dict = { ...raw };
  // `key: !override VALUE`: normalise VALUE, keep the marker for the merge.
  for (const [key, value] of Object.entries(svc)) {
    if (value instanceof OverrideValue) {
      svc[key] = new OverrideValue(normalizeService({ [key]: value.value }, file, name)[key]);
    }
  }
  try {
    for (const key of ['command', 'entrypoint'] as const) {
      if (typeof svc[key] === 'string') svc[key] = shellSplit(svc[key]);
    }
    if (svc.environment !== undefined) svc.environment = toMapping(svc.environment, '=', true);
    if (svc.labels !== undefined) svc.labels = toMapping(svc.labels, '=', false);
    if (svc.sysctls !== undefined) svc.sysctls = toMapping(svc.sysctls, '=', false);
    for (const key of ['dns', 'dns_search', 'tmpfs', 'env_file'] as const) {
      if (typeof svc[key] === 'string') svc[key] = [svc[key]];
    }
    if (svc.extra_hosts !== undefined) svc.extra_hosts = hostsList(svc.extra_hosts);
    if (Array.isArray(svc.networks)) svc.networks = Object.fromEntries(svc.networks.map((n) => [String(n), null]));
    if (Array.isArray(svc.ports)) {
      svc.ports = svc.ports.flatMap((p, i) =>
        isDict(p) ? [longPort(p, `ports[${i}]`)] : parseShortPort(String(p)),
      );
    }
    if (Array.isArray(svc.volumes)) {
      svc.volumes = svc.volumes.map((v) => (typeof v === 'string' ? parseShortVolume(v) : v));
    }
    for (const key of ['secrets', 'configs'] as const) {
      if (Array.isArray(svc[key])) svc[key] = svc[key].map(objectRef);
    }
    if (isDict(svc.healthcheck) && typeof svc.healthcheck.test === 'string') {
      svc.healthcheck = { ...svc.healthcheck, test: ['CMD-SHELL', svc.healthcheck.test] };
    }
    if (isDict(svc.deploy) && svc.deploy.labels !== undefined) {
      svc.deploy = { ...svc.deploy, labels: toMapping(svc.deploy.labels, '=', false) };
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('COMPOSE_SYNTAX', `${where}: ${(err as Error).message}`, 'see the Compose specification for the syntax of this key');
  }
  return svc;
}

/** Labels of top-level networks, volumes, secrets and configs as mappings. */
export function normalizeTopLevel(section: unknown): Dict {
  if (!isDict(section)) return {};
  const out: Dict = {};
  for (const [key, value] of Object.entries(section)) {
    if (isDict(value) && value.labels !== undefined) out[key] = { ...value, labels: toMapping(value.labels, '=', false) };
    else out[key] = value ?? {};
  }
  return out;
}
