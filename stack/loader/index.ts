/**
 * The loader: Compose files (as data) to one merged, interpolated, validated Compose model in long
 * syntax, ready for `stack/convert`. No file system access: the caller passes file contents and the
 * environment.
 *
 * Order of each file: parse YAML, interpolate, validate against the schema, normalise short syntax;
 * then all files merge in order. docker/cli also validates each file on its own before merging, so
 * an error names the file that has it.
 */
import { ConfigError } from '../../sql/errors.ts';
import { validateCompose } from '../schema/validate.ts';
import { interpolateConfig, type Environment } from './interpolation.ts';
import { mergeComposeFiles, stripMarkers } from './merge.ts';
import { normalizeService, normalizeTopLevel } from './normalize.ts';
import { parseComposeYaml, type ComposeFile } from './yaml.ts';

export type { ComposeFile } from './yaml.ts';
export type { Environment } from './interpolation.ts';

/** What the loader reads: files in order (later ones override), the environment, the directory relative paths start from. */
export interface LoadInput {
  files: ComposeFile[];
  /**
   * Variables for interpolation. The CLI merges them as documented in docs/compose.md: the
   * environment directory's `.env`, then minipaas.yaml `env:`, then the process environment, later
   * sources winning, so a shell can override a file as Compose lets it.
   */
  env: Environment;
  /** Absolute directory that relative paths (env_file, bind mounts, secret files) start from. */
  workingDir: string;
}

/** The merged Compose model: plain data in long syntax, keyed as in the files. */
export interface ComposeModel {
  services: Record<string, Record<string, unknown>>;
  networks: Record<string, Record<string, unknown>>;
  volumes: Record<string, Record<string, unknown>>;
  secrets: Record<string, Record<string, unknown>>;
  configs: Record<string, Record<string, unknown>>;
  /** Which file defined each service first, for messages. */
  origins: Record<string, string>;
}

/**
 * Top-level service keys `docker stack deploy` refuses outright (docker/cli's ForbiddenProperties):
 * refusing them too keeps a file that deploys with MiniPaaS deployable with the docker CLI.
 */
const FORBIDDEN: Record<string, string> = {
  extends: 'extends is not supported by docker stack deploy; copy the keys into the service',
  volume_driver: 'define a volume under top-level `volumes:` with a driver and use it from the service',
  volumes_from: 'share a volume by defining it under top-level `volumes:` and mounting it in each service',
  cpu_quota: 'set deploy.resources.limits.cpus',
  cpu_shares: 'set deploy.resources.reservations.cpus',
  cpuset: 'set deploy.resources',
  mem_limit: 'set deploy.resources.limits.memory',
  memswap_limit: 'set deploy.resources.limits.memory',
};

function dict(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * Loads Compose files into one model. Throws `ConfigError` for a file that does not parse (file,
 * line, column), fails the schema (key path, what is allowed), needs a variable that is not set, or
 * uses a key Swarm cannot honour.
 *
 * @example
 *   loadCompose({ files: [{ path: 'compose.yaml', content }], env: { TAG: '1.2' }, workingDir: '/srv/app' })
 */
export function loadCompose(input: LoadInput): ComposeModel {
  if (input.files.length === 0) {
    throw new ConfigError('COMPOSE_NO_FILES', 'no Compose file given', 'list the files in minipaas.yaml `project.files`');
  }
  const origins: Record<string, string> = {};
  const normalised = input.files.map((file) => {
    const parsed = parseComposeYaml(file);
    const interpolated = interpolateConfig(parsed, input.env, file.path);
    // !reset and !override are merge instructions: the schema checks the values they carry.
    validateCompose(stripMarkers(interpolated), file.path);
    const services = dict(interpolated.services);
    for (const [name, svc] of Object.entries(services)) {
      const forbidden = Object.keys(dict(svc)).filter((k) => k in FORBIDDEN);
      if (forbidden.length > 0) {
        throw new ConfigError(
          'COMPOSE_UNSUPPORTED',
          `${file.path}: services.${name} uses ${forbidden.map((k) => `'${k}'`).join(', ')}, which Swarm does not support`,
          forbidden.map((k) => FORBIDDEN[k]).join('; '),
        );
      }
      origins[name] ??= file.path;
    }
    const out: Record<string, unknown> = {
      services: Object.fromEntries(Object.entries(services).map(([n, s]) => [n, normalizeService(dict(s), file.path, n)])),
    };
    for (const section of ['networks', 'volumes', 'secrets', 'configs'] as const) {
      if (interpolated[section] !== undefined) out[section] = normalizeTopLevel(interpolated[section]);
    }
    return out;
  });
  const merged = mergeComposeFiles(normalised);
  const section = (k: string): Record<string, Record<string, unknown>> =>
    Object.fromEntries(Object.entries(dict(merged[k])).map(([n, v]) => [n, dict(v)]));
  return {
    services: section('services'),
    networks: section('networks'),
    volumes: section('volumes'),
    secrets: section('secrets'),
    configs: section('configs'),
    origins,
  };
}
